package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testKey = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="

func writeKey(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "wg.key"), []byte(testKey+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "wg.key"), mode)
}

func TestDevicesParse(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, 0o600)
	src := `devices:
  - {name: ipsec0, type: xfrm, if_id: 42, dev: eth0, address: 10.40.0.1/32}
  - {name: vti0, type: vti, local: 198.51.100.2, remote: 203.0.113.9, key: 0x100}
  - {name: gre1, type: gre, remote: 10.2.0.2, ikey: 5, okey: 6, ttl: 64}
  - {name: g6, type: ip6gre, remote: "2001:db8::9"}
  - name: wg0
    type: wireguard
    private_key_file: wg.key
    listen_port: 51820
    fwmark: 0xca6c
    address: [10.30.0.2/24]
    peers:
      - public_key: HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
        endpoint: "[2001:db8::1]:51820"
        allowed_ips: [0.0.0.0/0, "::/0"]
        persistent_keepalive: 25
        preshared_key_file: wg.key
`
	cfg, err := Parse([]byte(src), filepath.Join(dir, "t.yaml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Devices) != 5 {
		t.Fatalf("%d devices", len(cfg.Devices))
	}
	x, v, g, g6, w := cfg.Devices[0], cfg.Devices[1], cfg.Devices[2], cfg.Devices[3], cfg.Devices[4]
	if x.IfID != 42 || x.Dev != "eth0" || len(x.Addrs) != 1 || x.DisablePolicy {
		t.Errorf("xfrm: %+v", x)
	}
	if v.IKey != 0x100 || v.OKey != 0x100 || !v.DisablePolicy || v.Remote.String() != "203.0.113.9" {
		t.Errorf("vti: %+v", v)
	}
	if g.IKey != 5 || g.OKey != 6 || g.TTL != 64 || g.DisablePolicy {
		t.Errorf("gre: %+v", g)
	}
	if !g6.Remote.Is6() {
		t.Errorf("ip6gre: %+v", g6)
	}
	ww := w.WireGuard
	if ww == nil || ww.PublicKey != "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=" && ww.PublicKey == "" || ww.ListenPort != 51820 ||
		ww.FwMark != 0xca6c || len(ww.Peers) != 1 || ww.Peers[0].Keepalive != 25 || ww.Peers[0].Endpoint.Port() != 51820 ||
		!filepath.IsAbs(ww.PrivateKeyFile) || ww.Peers[0].PresharedKeyID == "" || !filepath.IsAbs(ww.Peers[0].PresharedKeyFile) {
		t.Errorf("wireguard: %+v", ww)
	}
}

func TestDevicesErrors(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, 0o600)
	cases := []struct{ src, want string }{
		{"devices: [{name: x, type: tun}]", `t.yaml:1:27: devices[0].type: unknown device type "tun"`},
		{"devices: [{name: x, type: xfrm}]", "devices[0].if_id: missing"},
		{"devices: [{name: x, type: xfrm, if_id: 1, remote: 10.0.0.1}]", "devices[0].remote: unknown field"},
		{"devices: [{name: x, type: gre}]", "devices[0].remote: missing"},
		{"devices: [{name: x, type: gre, remote: '2001:db8::1'}]", "endpoints are an IPv4 address"},
		{"devices: [{name: x, type: vti, remote: 10.0.0.1, key: 1, ikey: 2}]", "give either key or ikey/okey"},
		{"devices: [{name: x, type: gre, remote: 10.0.0.1}, {name: x, type: gre, remote: 10.0.0.2}]", "declared twice"},
		{"devices: [{name: waytoolongdevicename, type: gre, remote: 10.0.0.1}]", "at most 15 characters"},
		{"devices: [{name: w, type: wireguard}]", "devices[0].private_key_file: missing"},
		{"devices: [{name: w, type: wireguard, private_key_file: nope.key}]", "cannot read the private key"},
		{"devices: [{name: w, type: wireguard, private_key_file: t.yaml}]", "does not hold a WireGuard private key"},
		{"devices: [{name: w, type: wireguard, private_key_file: wg.key, peers: [{public_key: abc}]}]", "is not a WireGuard public key"},
		{"devices: [{name: w, type: wireguard, private_key_file: wg.key, peers: [{public_key: " + testKey + ", preshared_key_file: t.yaml}]}]", "does not hold a WireGuard preshared key"},
		{"devices: [{name: w, type: wireguard, private_key_file: wg.key, peers: [{public_key: " + testKey + ", endpoint: vpn.example.com:51820}]}]", "host names are not resolved"},
	}
	os.WriteFile(filepath.Join(dir, "t.yaml"), []byte("x: 1\n"), 0o600)
	for _, c := range cases {
		_, err := Parse([]byte(c.src), filepath.Join(dir, "t.yaml"), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got:  %v\n want: %s", c.src, err, c.want)
		}
	}
	writeKey(t, dir, 0o644)
	_, err := Parse([]byte("devices: [{name: w, type: wireguard, private_key_file: wg.key}]"), filepath.Join(dir, "t.yaml"), Options{})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key: %v", err)
	}
}
