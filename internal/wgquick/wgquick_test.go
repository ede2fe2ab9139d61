package wgquick

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
)

const sample = `# a typical commercial VPN's file
[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.64.0.2/32, fc00:bbbb:bbbb:bb01::2/128
DNS = 10.64.0.1
ListenPort = 51820
PostUp = iptables -I OUTPUT ! -o %i -j REJECT

[Peer]
PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = 198.51.100.7:51820
PersistentKeepalive = 25
PresharedKey = FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=
`

func TestImportRoundTrip(t *testing.T) {
	c, err := Parse(strings.NewReader(sample), "/etc/wireguard/wg-work.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "wg-work.key"), []byte(c.PrivateKey.String()+"\n"), 0o600)
	if c.PresharedKeyFile(0) != "wg-work-peer1.psk" || c.Peers[0].PresharedKey == nil {
		t.Fatalf("preshared key: %q %v", c.PresharedKeyFile(0), c.Peers[0].PresharedKey)
	}
	os.WriteFile(filepath.Join(dir, "wg-work-peer1.psk"), []byte(c.Peers[0].PresharedKey.String()+"\n"), 0o600)
	yaml, notes := c.YAML("wg-work.key")
	if len(notes) != 2 || !strings.Contains(notes[0], "PostUp") || !strings.Contains(notes[1], "10.64.0.1") {
		t.Errorf("notes: %q", notes)
	}
	if !strings.Contains(yaml, "# Not taken over") || !strings.Contains(yaml, "iptables -I OUTPUT") {
		t.Errorf("the scripts are not listed in the comments:\n%s", yaml)
	}
	path := filepath.Join(dir, "tunroute.yaml")
	os.WriteFile(path, []byte(yaml), 0o600)
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	d := cfg.Device("wg-work")
	if d == nil || d.WireGuard == nil {
		t.Fatalf("no device:\n%s", yaml)
	}
	w := d.WireGuard
	if w.PublicKey != c.PrivateKey.PublicKey().String() || w.ListenPort != 51820 || !w.Routing || w.TableGiven ||
		len(d.Addrs) != 2 || len(w.Peers) != 1 || w.Peers[0].Keepalive != 25 ||
		w.Peers[0].Endpoint.String() != "198.51.100.7:51820" || len(w.Peers[0].AllowedIPs) != 2 ||
		w.Peers[0].PresharedKeyID == "" || !strings.HasSuffix(w.Peers[0].PresharedKeyFile, "wg-work-peer1.psk") {
		t.Fatalf("imported as %+v %+v\n%s", d, w, yaml)
	}
}

func TestImportErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"[Interface]\nAddress = 10.0.0.2/24\n", "no PrivateKey"},
		{"[Interface]\nPrivateKey = nope\n", "x.conf:2: PrivateKey is not a WireGuard key"},
		{"[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = vpn.example.com:51820\n", "x.conf:5: Endpoint \"vpn.example.com:51820\": tunroute needs ADDRESS:PORT"},
		{"[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n[Peer]\nPresharedKey = short\n", "x.conf:4: PresharedKey is not a WireGuard key"},
		{"[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nTable = main\n", "x.conf:3: Table \"main\""},
		{"[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n[Peer]\n", "peer 1 has no PublicKey"},
		{"[Wat]\n", "x.conf:1: unknown section [Wat]"},
	} {
		_, err := Parse(strings.NewReader(c.src), "x.conf")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.src, err, c.want)
		}
	}
}
