package verify

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// wgFullTunnel is a full-tunnel WireGuard device (wg-quick's routing,
// the CVE-2019-14899 guard) under a kill switch that guards forwarding.
const wgFullTunnel = `devices:
  - name: wg0
    type: wireguard
    private_key_file: wg.key
    address: [10.30.0.2/24, "2001:db8:30::2/64"]
    table: auto
    peers:
      - {public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=, endpoint: "198.51.100.2:51820", allowed_ips: [0.0.0.0/0, "::/0"]}
killswitch:
  forward: true
  allow:
    - to: 10.1.0.0/24
`

func wgConfig(t *testing.T) *config.Config {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "wg.key"), []byte("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(wgFullTunnel), filepath.Join(dir, "test.yaml"), config.Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWireGuardHolds: a routed WireGuard device is a tunnel and its peer
// a VPN server, for check as for the kill switch: no false alarm.
func TestWireGuardHolds(t *testing.T) {
	rep, _, err := Check(Input{Config: wgConfig(t), Observed: labClient()})
	if err != nil {
		t.Fatal(err)
	}
	expectAllHold(t, rep, "")
}

// TestWireGuardGuardFates: the guard (iifname != { wg0, lo }) drops what
// another interface sends to the tunnel's address, and only that.
func TestWireGuardGuardFates(t *testing.T) {
	cfg := wgConfig(t)
	obs := labClient()
	// The kernel's local routes for the host's addresses: what delivers
	// a packet to this host.
	for _, ad := range obs.Addrs {
		if ad.Dev != "lo" {
			obs.Routes = append(obs.Routes, state.Route{Table: 255, Type: state.RouteLocal, Dst: netip.PrefixFrom(ad.Prefix.Addr(), ad.Prefix.Addr().BitLen()),
				Protocol: 2, Scope: state.ScopeHost, PrefSrc: ad.Prefix.Addr(), Nexthops: []state.Nexthop{{Dev: ad.Dev}}})
		}
	}
	e := evaluatorFor(t, cfg, obs, nil)
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		p    Packet
		want string
	}{
		{"from the LAN to the tunnel's address", Packet{Family: 4, IIF: "eth0", Src: a("10.1.0.1"), Dst: a("10.30.0.2"), Proto: 17, SPort: 1, DPort: 9}, "dropped by the firewall (CVE-2019-14899"},
		{"from the LAN to the tunnel's IPv6 address", Packet{Family: 6, IIF: "eth0", Src: a("2001:db8:1::1"), Dst: a("2001:db8:30::2"), Proto: 17, SPort: 1, DPort: 9}, "dropped by the firewall (CVE-2019-14899"},
		{"from the tunnel to its address", Packet{Family: 4, IIF: "wg0", Src: a("10.30.0.1"), Dst: a("10.30.0.2"), Proto: 17, SPort: 1, DPort: 9}, "delivered to this host"},
		{"from the LAN to the host's LAN address", Packet{Family: 4, IIF: "eth0", Src: a("10.1.0.1"), Dst: a("10.1.0.2"), Proto: 17, SPort: 1, DPort: 9}, "delivered to this host"},
		{"sent to the tunnel's address by this host", Packet{Family: 4, Dst: a("10.30.0.2"), Proto: 17, SPort: 1, DPort: 9}, "delivered to this host"},
	} {
		if got := e.fate(&tc.p).String(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s: %s, want %s...", tc.name, tc.p.String(), got, tc.want)
		}
	}
}
