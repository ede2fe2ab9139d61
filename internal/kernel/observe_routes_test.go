package kernel

import (
	"slices"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

func TestObserveRoutesFilter(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "filt")
	quietIPv6(t, ns)
	ipScript(t, ns, vethVA+`
-6 addr add 2001:db8:5::1/64 dev va nodad
route add 10.10.0.0/16 via 10.1.0.254 table 100 proto 116
route add 10.11.0.0/16 via 10.1.0.254 table 100 proto static
route add 10.12.0.0/16 via 10.1.0.254 table 101 proto 116
route add 10.13.0.0/16 via 10.1.0.254 table 100000 proto 116
-6 route add 2001:db8:10::/48 via 2001:db8:5::fe table 100 proto 116
-6 route add 2001:db8:11::/48 via 2001:db8:5::fe table 100
`)
	settle(t, ns)
	h := openT(t, ns)
	h6 := owned(100, state.RouteUnicast, "2001:db8:12::/48", via("2001:db8:5::fe", "va"))
	h6.Expires = 600
	if _, err := h.Execute(ops(state.Add, h6)); err != nil {
		t.Fatal(err)
	}
	dsts := func(f RouteFilter) []string {
		t.Helper()
		rs, err := h.ObserveRoutes(f)
		if err != nil {
			t.Fatalf("ObserveRoutes(%+v): %v", f, err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.Dst.String())
			if r.Dst.String() == "2001:db8:12::/48" && (r.Expires < 590 || r.Expires > 600) {
				t.Errorf("expires: %s", js(r))
			}
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		f    RouteFilter
		want []string
	}{
		{RouteFilter{Table: 100, Protocol: state.Proto}, []string{"10.10.0.0/16", "2001:db8:10::/48", "2001:db8:12::/48"}},
		{RouteFilter{Family: 4, Table: 100}, []string{"10.10.0.0/16", "10.11.0.0/16"}},
		{RouteFilter{Family: 6, Table: 100, Protocol: state.Proto}, []string{"2001:db8:10::/48", "2001:db8:12::/48"}},
		{RouteFilter{Family: 4, Protocol: state.Proto}, []string{"10.10.0.0/16", "10.12.0.0/16", "10.13.0.0/16"}},
		{RouteFilter{Table: 100000}, []string{"10.13.0.0/16"}},
		{RouteFilter{Table: 4242}, nil}, // no such table
	} {
		if got := dsts(c.f); !slices.Equal(got, c.want) {
			t.Errorf("ObserveRoutes(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
}

func TestListNamespaces(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "list")
	names, err := ListNamespaces()
	if err != nil || !slices.Contains(names, ns) || !slices.IsSorted(names) {
		t.Errorf("ListNamespaces() = %v, %v; want it to hold %s", names, err, ns)
	}
}
