// Package statetest holds the kernel states the unit tests of compile,
// verify and engine start from, so that each test package does not keep
// its own copy of the same namespace. Only tests import it.
package statetest

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
)

// Nexthops is the one nexthop of a route: via gw (empty: none, the
// destination is on the link) out of dev.
func Nexthops(gw, dev string) []state.Nexthop {
	n := state.Nexthop{Dev: dev}
	if gw != "" {
		n.Gateway = netip.MustParseAddr(gw)
	}
	return []state.Nexthop{n}
}

// LabClient is the lab's client namespace before tunroute: lo (with
// ::1), an uplink eth0 towards the ISP (10.1.0.2/24 with gateway
// 10.1.0.1, and 2001:db8:1::2/64 with gateway 2001:db8:1::1) and a
// point-to-point tunnel wg0 (10.30.0.2/24, 2001:db8:30::2/64), with the
// main table's routes the kernel and the uplink put there and the
// kernel's default rules. internal/verify/testdata/lab-client.json is
// this state as a snapshot (TestLabClientSnapshot keeps it so).
func LabClient() *state.State {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	return &state.State{
		Version: state.Version, Namespace: "tr-client",
		Links: []state.Link{{Index: 1, Name: "lo", Up: true, Carrier: true, Loopback: true},
			{Index: 2, Name: "eth0", Kind: "veth", Up: true, Carrier: true},
			{Index: 3, Name: "wg0", Kind: "tun", Up: true, Carrier: true, PointToPoint: true, NoARP: true}},
		Addrs: []state.Addr{
			{Dev: "lo", Index: 1, Prefix: p("127.0.0.1/8"), Scope: state.ScopeHost},
			{Dev: "lo", Index: 1, Prefix: p("::1/128"), Scope: state.ScopeHost},
			{Dev: "eth0", Index: 2, Prefix: p("10.1.0.2/24"), Scope: state.ScopeUniverse},
			{Dev: "eth0", Index: 2, Prefix: p("2001:db8:1::2/64"), Scope: state.ScopeUniverse},
			{Dev: "wg0", Index: 3, Prefix: p("10.30.0.2/24"), Scope: state.ScopeUniverse},
			{Dev: "wg0", Index: 3, Prefix: p("2001:db8:30::2/64"), Scope: state.ScopeUniverse},
		},
		Routes: []state.Route{
			{Table: 254, Type: state.RouteUnicast, Dst: p("0.0.0.0/0"), Protocol: 4, Nexthops: Nexthops("10.1.0.1", "eth0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("10.1.0.0/24"), Protocol: 2, Scope: state.ScopeLink, PrefSrc: a("10.1.0.2"), Nexthops: Nexthops("", "eth0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("10.30.0.0/24"), Protocol: 2, Scope: state.ScopeLink, PrefSrc: a("10.30.0.2"), Nexthops: Nexthops("", "wg0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("2001:db8:1::/64"), Protocol: 2, Metric: 256, Nexthops: Nexthops("", "eth0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("2001:db8:30::/64"), Protocol: 2, Metric: 256, Nexthops: Nexthops("", "wg0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("::/0"), Protocol: 4, Metric: 1024, Nexthops: Nexthops("2001:db8:1::1", "eth0")},
		},
		Rules: DefaultRules(),
	}
}

// DefaultRules are the rules a namespace starts with: local, main and
// default for IPv4, local and main for IPv6.
func DefaultRules() []state.Rule {
	var rs []state.Rule
	for _, fam := range []int{4, 6} {
		for _, t := range []struct{ pref, table uint32 }{{0, 255}, {32766, 254}, {32767, 253}} {
			if fam == 6 && t.table == 253 {
				continue
			}
			r := state.NewRule(fam)
			r.Priority, r.Table, r.Protocol = t.pref, t.table, 2
			rs = append(rs, r)
		}
	}
	return rs
}
