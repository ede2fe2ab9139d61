package verify

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// withLinkLocal gives eth0 a link-local address and the kernel's routes
// for it: what a real uplink has, and what neighbour discovery and MLD
// leave from.
func withLinkLocal(s *state.State) *state.State {
	p := netip.MustParsePrefix
	s.Addrs = append(s.Addrs, state.Addr{Dev: "eth0", Index: 2, Prefix: p("fe80::2/64"), Scope: state.ScopeLink})
	s.Routes = append(s.Routes,
		state.Route{Table: 254, Type: state.RouteUnicast, Dst: p("fe80::/64"), Protocol: 2, Metric: 256, Nexthops: []state.Nexthop{{Dev: "eth0"}}},
		state.Route{Table: 255, Type: state.RouteMulticast, Dst: p("ff00::/8"), Protocol: 2, Metric: 256, Nexthops: []state.Nexthop{{Dev: "eth0"}}})
	return s
}

const bgpKillSwitch = `
vpns:
  - {name: work, type: openvpn}
identities:
  - name: inside
    vpn: work
  - name: outside
    device: eth0
redirect:
  via: inside
killswitch:
  allow:
    - to: 10.1.0.0/24
bgp:
  asn: 64500
  router_id: 10.1.0.2
  bfd: true
  neighbors:
    - address: 192.0.2.9
      local: 10.1.0.2
      asn: 64501
      accept: [10.7.0.0/16]
`

// TestShapeHolds: with the kill switch of neighbour discovery and MLD
// (hop limit, link-local or the device's own source) and BGP sessions in
// clear, every built-in property holds: check sees the same exceptions
// as the firewall, in every state.
func TestShapeHolds(t *testing.T) {
	obs := withLinkLocal(withTun(labClient(), "tun0", 4, "10.8.0.2/24"))
	f := vpnFacts("work", "openvpn", "tun0", "10.8.0.2/24")
	f.Gateway4 = netip.MustParseAddr("10.8.0.1")
	rep := check(t, bgpKillSwitch, obs, map[string]*facts.VPN{"work": f})
	expectAllHold(t, rep, "")
}

// TestShapeFates: the fates the firewall gives the link's plumbing and
// the BGP session, packet by packet.
func TestShapeFates(t *testing.T) {
	obs := withLinkLocal(withTun(labClient(), "tun0", 4, "10.8.0.2/24"))
	f := vpnFacts("work", "openvpn", "tun0", "10.8.0.2/24")
	f.Gateway4 = netip.MustParseAddr("10.8.0.1")
	e := evaluatorFor(t, parseConfig(t, bgpKillSwitch), obs, map[string]*facts.VPN{"work": f})
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		p    Packet
		want string
	}{
		{"neighbour solicitation (hop limit 255)", Packet{Family: 6, Src: a("fe80::2"), Dst: a("ff02::1:ff00:1"), Proto: 58, ICMPType: 135}, "leaves by eth0 in clear"},
		{"neighbour solicitation from the device's global address", Packet{Family: 6, Src: a("2001:db8:1::2"), Dst: a("2001:db8:1::1"), Proto: 58, ICMPType: 135}, "leaves by eth0 in clear"},
		{"neighbour solicitation from an address of another device", Packet{Family: 6, Src: a("2001:db8:30::2"), Dst: a("2001:db8:1::1"), Proto: 58, ICMPType: 135}, "dropped by the firewall (kill switch"},
		{"MLD report (hop limit 1)", Packet{Family: 6, Src: a("fe80::2"), Dst: a("ff02::16"), Proto: 58, ICMPType: 143}, "leaves by eth0 in clear"},
		{"MLD report to a global address (hop limit 64)", Packet{Family: 6, Src: a("fe80::2"), Dst: a("2001:db8:1::1"), Proto: 58, ICMPType: 143}, "dropped by the firewall (kill switch"},
		{"echo to a multicast group", Packet{Family: 6, Src: a("fe80::2"), Dst: a("ff02::1"), Proto: 58, ICMPType: 128}, "dropped by the firewall (kill switch"},
		{"BGP to the peer", Packet{Family: 4, Src: a("10.1.0.2"), Dst: a("192.0.2.9"), Proto: 6, SPort: 40000, DPort: 179}, "leaves by eth0 in clear"},
		{"BGP's answer from the peer's side", Packet{Family: 4, Src: a("10.1.0.2"), Dst: a("192.0.2.9"), Proto: 6, SPort: 179, DPort: 40000}, "leaves by eth0 in clear"},
		{"not BGP, to the peer", Packet{Family: 4, Src: a("10.1.0.2"), Dst: a("192.0.2.9"), Proto: 6, SPort: 40000, DPort: 80}, "dropped by the firewall (kill switch"},
	} {
		got := e.fate(&tc.p).String()
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s: %s, want %s...", tc.name, tc.p.String(), got, tc.want)
		}
	}
}
