package kernel

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// TestObserveCompact: with CompactRoutes, tunroute's own routes that
// share a template come back as sets, the rest as routes, and the two
// forms together are exactly what Observe returns.
func TestObserveCompact(t *testing.T) {
	needRoot(t)
	ns, h := setNS(t, "compact")
	ipScript(t, ns, `
route add 10.50.0.0/16 via 10.1.0.254 table 100 proto static
route add 10.51.0.0/16 via 10.1.0.254 table 100 proto 116 metric 7
route add 10.52.0.0/16 table 100 proto 116 nexthop via 10.1.0.254 nexthop via 10.1.0.253
-6 route add 2001:db8:60::/48 via 2001:db8:1::fe table 100 proto 116 expires 600
`)
	big := setOf(100, "10.1.0.254", hostRoutes(3000))
	other := setOf(101, "10.1.0.254", hostRoutes(100)) // same routes, another table
	var d6 []netip.Prefix
	for i := 0; i < 70; i++ {
		d6 = append(d6, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x10, byte(i)}), 48))
	}
	set6 := setOf(100, "2001:db8:1::fe", d6)
	small := setOf(100, "10.1.0.253", hostRoutes(3100)[3000:3010]) // below CompactMin
	bh := &state.RouteSet{Template: state.Route{Table: 102, Type: state.RouteBlackhole, Protocol: state.Proto},
		Dsts: append(hostRoutes(80), pfx("0.0.0.0/0"))}
	var ops []state.Op
	for _, s := range []*state.RouteSet{big, other, set6, small, bh} {
		ops = append(ops, state.Op{Action: state.Add, RouteSet: s})
	}
	if _, err := h.Execute(ops); err != nil {
		t.Fatal(err)
	}
	plain := observeT(t, h, ObserveOptions{})
	compact := observeT(t, h, ObserveOptions{CompactRoutes: true})
	sizes := map[string]int{}
	for _, s := range compact.RouteSets {
		r := s.Route(s.Dsts[0])
		sizes[fmt.Sprint(r.Table)+" "+s.Template.Type.String()+" "+fam(r.Is6())] += len(s.Dsts)
		for _, d := range s.Dsts {
			if d.Addr().Is6() != r.Is6() {
				t.Errorf("set of mixed families: %s", s.Summary())
			}
		}
	}
	want := map[string]int{"100 unicast 4": 3000, "101 unicast 4": 100, "100 unicast 6": 70, "102 blackhole 4": 81}
	if len(sizes) != len(want) {
		t.Errorf("sets: %v, want %v", sizes, want)
	}
	for k, n := range want {
		if sizes[k] != n {
			t.Errorf("sets: %v, want %v", sizes, want)
		}
	}
	// Expanded, the compact form is the plain one.
	expanded := append([]state.Route(nil), compact.Routes...)
	for i := range compact.RouteSets {
		for _, d := range compact.RouteSets[i].Dsts {
			expanded = append(expanded, compact.RouteSets[i].Route(d))
		}
	}
	for i := range plain.Routes {
		plain.Routes[i].Expires = 0 // read a moment apart
	}
	for i := range expanded {
		expanded[i].Expires = 0
	}
	sameSet(t, "routes", expanded, plain.Routes)
	plain.Routes, compact.Routes, compact.RouteSets = nil, nil, nil
	// A compact read (a plan's) has the namespace-wide sysctls only.
	for k := range plain.Sysctls {
		if strings.Contains(k, ".conf.") && !strings.Contains(k, ".conf.all.") && !strings.Contains(k, ".conf.default.") {
			if _, ok := compact.Sysctls[k]; ok {
				t.Errorf("compact read has the per-device sysctl %s", k)
			}
			delete(plain.Sysctls, k)
		}
	}
	if js(plain) != js(compact) {
		t.Errorf("the rest differs:\n%s\n%s", js(plain), js(compact))
	}
	// A smaller CompactMin makes a set of the small group too.
	c2, err := h.ObserveWith(ObserveOptions{CompactRoutes: true, CompactMin: 10})
	if err != nil || len(c2.RouteSets) != 5 {
		t.Errorf("CompactMin 10: %d sets, %v", len(c2.RouteSets), err)
	}
}

func fam(v6 bool) string {
	if v6 {
		return "6"
	}
	return "4"
}
