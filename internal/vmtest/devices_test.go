package vmtest

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestDeviceLifecycle: for each kind, apply creates the device with its
// settings and addresses, a second plan is empty, a changed setting is
// changed in place (the addresses stay), and down removes it.
func TestDeviceLifecycle(t *testing.T) {
	inVM(t)
	key, _ := wgtypes.GeneratePrivateKey()
	peer, _ := wgtypes.GeneratePrivateKey()
	files := map[string]string{"wg.key": key.String() + "\n"}
	cases := []struct {
		kind, dev, before, after string
		check                    func(*state.Link) string
	}{
		{"xfrm", "ipsec0", "if_id: 42, dev: eth0", "if_id: 43, dev: eth0", func(l *state.Link) string {
			return fmt.Sprintf("if_id=%d dev=%s", l.Tunnel.IfID, l.Tunnel.Dev)
		}},
		{"vti", "vti0", "local: 10.9.0.1, remote: 10.9.0.2, key: 0x100", "local: 10.9.0.1, remote: 10.9.0.2, ikey: 0x100, okey: 0x200", func(l *state.Link) string {
			return fmt.Sprintf("%s>%s ikey=%#x okey=%#x disable_policy=%v", l.Tunnel.Local, l.Tunnel.Remote, l.Tunnel.IKey, l.Tunnel.OKey, l.Tunnel.DisablePolicy)
		}},
		{"vti6", "vti60", "local: '2001:db8:9::1', remote: '2001:db8:9::2', key: 7", "local: '2001:db8:9::1', remote: '2001:db8:9::2', key: 8", func(l *state.Link) string {
			return fmt.Sprintf("%s>%s ikey=%d okey=%d", l.Tunnel.Local, l.Tunnel.Remote, l.Tunnel.IKey, l.Tunnel.OKey)
		}},
		{"gre", "gre1", "local: 10.9.0.1, remote: 10.9.0.2, key: 5, ttl: 64", "local: 10.9.0.1, remote: 10.9.0.2, key: 6, ttl: 64", func(l *state.Link) string {
			return fmt.Sprintf("%s>%s key=%d/%d ttl=%d", l.Tunnel.Local, l.Tunnel.Remote, l.Tunnel.IKey, l.Tunnel.OKey, l.Tunnel.TTL)
		}},
		{"ip6gre", "g6", "remote: '2001:db8:9::2'", "remote: '2001:db8:9::3'", func(l *state.Link) string {
			return fmt.Sprintf("remote=%s", l.Tunnel.Remote)
		}},
		{"wireguard", "wg0", "private_key_file: wg.key, listen_port: 51820, peers: [{public_key: " + peer.PublicKey().String() + ", allowed_ips: 10.60.0.0/24}]",
			"private_key_file: wg.key, listen_port: 51821, fwmark: 0xca6c, peers: [{public_key: " + peer.PublicKey().String() + ", allowed_ips: 10.60.0.0/24, persistent_keepalive: 25}]",
			func(l *state.Link) string {
				w := l.WireGuard
				if w == nil || len(w.Peers) != 1 {
					return fmt.Sprintf("%+v", w)
				}
				return fmt.Sprintf("pub=%v port=%d mark=%#x keepalive=%d", w.PublicKey == key.PublicKey().String(), w.ListenPort, w.FwMark, w.Peers[0].Keepalive)
			}},
	}
	want := map[string][2]string{
		"xfrm":      {"if_id=42 dev=eth0", "if_id=43 dev=eth0"},
		"vti":       {"10.9.0.1>10.9.0.2 ikey=0x100 okey=0x100 disable_policy=true", "10.9.0.1>10.9.0.2 ikey=0x100 okey=0x200 disable_policy=true"},
		"vti6":      {"2001:db8:9::1>2001:db8:9::2 ikey=7 okey=7", "2001:db8:9::1>2001:db8:9::2 ikey=8 okey=8"},
		"gre":       {"10.9.0.1>10.9.0.2 key=5/5 ttl=64", "10.9.0.1>10.9.0.2 key=6/6 ttl=64"},
		"ip6gre":    {"remote=2001:db8:9::2", "remote=2001:db8:9::3"},
		"wireguard": {"pub=true port=51820 mark=0x0 keepalive=0", "pub=true port=51821 mark=0xca6c keepalive=25"},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			ns := newNS(t, "lc-"+c.kind)
			peerNS := newNS(t, "lcp-"+c.kind)
			cable(t, ns, peerNS, "10.9.0.1/24", "10.9.0.2/24")
			testns.Cmd(t, "ip", "-n", ns, "addr", "add", "2001:db8:9::1/64", "dev", "eth0", "nodad")
			cfg := func(settings string) string {
				return fmt.Sprintf("devices:\n  - {name: %s, type: %s, %s, address: [10.70.0.1/30]}\n", c.dev, c.kind, settings)
			}
			path := writeConfig(t, cfg(c.before), files)
			p := apply(t, ns, path)
			if !strings.Contains(p.Text(), "+ link "+c.dev+" type "+c.kind) {
				t.Fatalf("plan:\n%s", p.Text())
			}
			l := observedLink(t, ns, c.dev)
			if l == nil || l.Kind != c.kind || !l.Owned() || !l.Up {
				t.Fatalf("after apply: %+v", l)
			}
			if got := c.check(l); got != want[c.kind][0] {
				t.Fatalf("created as %s, want %s", got, want[c.kind][0])
			}
			if p, _ := planFor(t, ns, path); !p.Empty() {
				t.Fatalf("second plan not empty:\n%s", p.Text())
			}
			path = writeConfig(t, cfg(c.after), files)
			p = apply(t, ns, path)
			if len(p.Ops) != 1 || p.Ops[0].Action != state.Replace {
				t.Fatalf("a changed setting planned as:\n%s", p.Text())
			}
			l = observedLink(t, ns, c.dev)
			if got := c.check(l); got != want[c.kind][1] {
				t.Fatalf("changed to %s, want %s", got, want[c.kind][1])
			}
			if out := testns.Cmd(t, "ip", "-n", ns, "-o", "addr", "show", "dev", c.dev); !strings.Contains(out, "10.70.0.1/30") {
				t.Fatalf("the address went with the change: %s", out)
			}
			if p, _ := planFor(t, ns, path); !p.Empty() {
				t.Fatalf("plan after the change not empty:\n%s", p.Text())
			}
			down(t, ns)
			if l := observedLink(t, ns, c.dev); l != nil {
				t.Fatalf("down left %+v", l)
			}
		})
	}
}

// TestGRETraffic: two namespaces joined by a veth, each with a gre device
// from its config; a datagram crosses the tunnel.
func TestGRETraffic(t *testing.T) {
	inVM(t)
	a, b := newNS(t, "gre-a"), newNS(t, "gre-b")
	cable(t, a, b, "10.9.0.1/24", "10.9.0.2/24")
	apply(t, a, writeConfig(t, "devices: [{name: gre1, type: gre, local: 10.9.0.1, remote: 10.9.0.2, key: 5, address: 10.50.0.1/30}]\n", nil))
	apply(t, b, writeConfig(t, "devices: [{name: gre1, type: gre, local: 10.9.0.2, remote: 10.9.0.1, key: 5, address: 10.50.0.2/30}]\n", nil))
	from, err := udpThrough(t, a, netip.MustParseAddr("10.50.0.1"), b, netip.MustParseAddrPort("10.50.0.2:7000"), 5*time.Second)
	if err != nil || from != netip.MustParseAddr("10.50.0.1") {
		t.Fatalf("through gre: %v (from %s)", err, from)
	}
	// An identity and a route over the device, like over any device:
	// B's far network 10.60.0.0/24 is reached through gre1 from the
	// identity's address.
	testns.Cmd(t, "ip", "-n", b, "addr", "add", "10.60.0.1/32", "dev", "lo")
	apply(t, a, writeConfig(t, `devices: [{name: gre1, type: gre, local: 10.9.0.1, remote: 10.9.0.2, key: 5, address: 10.50.0.1/30}]
identities: [{name: far, device: gre1, address: 10.50.0.1, gateway: none}]
routes: [{to: 10.60.0.0/24, via: far}]
`, nil))
	if r := testns.Cmd(t, "ip", "-n", a, "route", "get", "10.60.0.1"); !strings.Contains(r, "dev gre1") || !strings.Contains(r, "src 10.50.0.1") {
		t.Fatalf("route to the far network: %s", r)
	}
	from, err = udpThrough(t, a, netip.Addr{}, b, netip.MustParseAddrPort("10.60.0.1:7002"), 5*time.Second)
	if err != nil || from != netip.MustParseAddr("10.50.0.1") {
		t.Fatalf("through the route over gre: %v (from %s)", err, from)
	}
	// Another key on one side: the tunnel no longer carries it.
	apply(t, b, writeConfig(t, "devices: [{name: gre1, type: gre, local: 10.9.0.2, remote: 10.9.0.1, key: 6, address: 10.50.0.2/30}]\n", nil))
	if _, err := udpThrough(t, a, netip.MustParseAddr("10.50.0.1"), b, netip.MustParseAddrPort("10.50.0.2:7001"), time.Second); err == nil {
		t.Fatal("a datagram crossed a gre tunnel whose keys differ")
	}
}

// TestKernelWireGuardTraffic: two kernel WireGuard devices configured
// from their configs shake hands and carry a datagram; the handshake
// shows in the observed state (the health signal).
func TestKernelWireGuardTraffic(t *testing.T) {
	inVM(t)
	a, b := newNS(t, "wg-a"), newNS(t, "wg-b")
	cable(t, a, b, "10.9.0.1/24", "10.9.0.2/24")
	ka, _ := wgtypes.GeneratePrivateKey()
	kb, _ := wgtypes.GeneratePrivateKey()
	cfgA := fmt.Sprintf(`devices:
  - name: wg0
    type: wireguard
    private_key_file: a.key
    listen_port: 51820
    address: 10.60.0.1/24
    peers: [{public_key: %s, endpoint: "10.9.0.2:51820", allowed_ips: 10.60.0.2/32, persistent_keepalive: 1}]
`, kb.PublicKey())
	cfgB := fmt.Sprintf(`devices:
  - name: wg0
    type: wireguard
    private_key_file: b.key
    listen_port: 51820
    address: 10.60.0.2/24
    peers: [{public_key: %s, allowed_ips: 10.60.0.1/32}]
`, ka.PublicKey())
	apply(t, b, writeConfig(t, cfgB, map[string]string{"b.key": base64.StdEncoding.EncodeToString(kb[:])}))
	apply(t, a, writeConfig(t, cfgA, map[string]string{"a.key": ka.String()}))
	from, err := udpThrough(t, a, netip.MustParseAddr("10.60.0.1"), b, netip.MustParseAddrPort("10.60.0.2:7000"), 10*time.Second)
	if err != nil || from != netip.MustParseAddr("10.60.0.1") {
		t.Fatalf("through wireguard: %v (from %s)", err, from)
	}
	l := observedLink(t, a, "wg0")
	if l.WireGuard == nil || len(l.WireGuard.Peers) != 1 || l.WireGuard.Peers[0].LastHandshake.IsZero() {
		t.Fatalf("no handshake observed: %+v", l.WireGuard)
	}
	if age := time.Since(l.WireGuard.Peers[0].LastHandshake); age < 0 || age > time.Minute {
		t.Fatalf("handshake age %s", age)
	}
}
