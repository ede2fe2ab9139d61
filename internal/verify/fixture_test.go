package verify

import (
	"net/netip"
	"testing"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// labClient is the lab's client namespace before tunroute: an uplink
// eth0 (10.1.0.2/24, gateway 10.1.0.1, IPv6 too) and a tunnel wg0.
func labClient() *state.State {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	nh := func(gw, dev string) []state.Nexthop {
		n := state.Nexthop{Dev: dev}
		if gw != "" {
			n.Gateway = a(gw)
		}
		return []state.Nexthop{n}
	}
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
			{Table: 254, Type: state.RouteUnicast, Dst: p("0.0.0.0/0"), Protocol: 4, Nexthops: nh("10.1.0.1", "eth0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("10.1.0.0/24"), Protocol: 2, Scope: state.ScopeLink, PrefSrc: a("10.1.0.2"), Nexthops: nh("", "eth0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("10.30.0.0/24"), Protocol: 2, Scope: state.ScopeLink, PrefSrc: a("10.30.0.2"), Nexthops: nh("", "wg0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("2001:db8:1::/64"), Protocol: 2, Metric: 256, Nexthops: nh("", "eth0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("2001:db8:30::/64"), Protocol: 2, Metric: 256, Nexthops: nh("", "wg0")},
			{Table: 254, Type: state.RouteUnicast, Dst: p("::/0"), Protocol: 4, Metric: 1024, Nexthops: nh("2001:db8:1::1", "eth0")},
		},
		Rules: defaultRules(),
	}
}

// defaultRules are the rules a namespace starts with.
func defaultRules() []state.Rule {
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

var testTables = map[string]uint32{"main": 254, "local": 255, "default": 253, "from.this.host": 2}

// compiled is the state yaml would leave in obs (nil: the lab client).
func compiled(t testing.TB, yaml string, obs *state.State) (*config.Config, *compile.Result, *state.State) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: testTables})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if obs == nil {
		obs = labClient()
	}
	res, err := compile.Compile(cfg, obs, nil)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return cfg, res, plan.Preview(res.State, obs)
}
