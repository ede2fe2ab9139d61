package fib

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// TestBuildInAddressOrder: a state in the kernel's dump order (each table
// in address order, the prefixes of one address together) is built
// without the node index; the same routes in another order go through the
// index from the first route out of order. Both FIBs must answer alike,
// also for prefixes that several routes share (other metric or TOS).
func TestBuildInAddressOrder(t *testing.T) {
	shuffled, spec := bigState(9, 30000, 3000, 100)
	// Routes sharing a prefix: a second metric and a TOS route for
	// every 50th IPv4 route, appended (out of order) to the shuffled
	// state.
	var extra []state.Route
	for i, r := range shuffled.Routes {
		if i%50 == 0 && r.Dst.Addr().Is4() {
			m := r
			m.Metric = 100
			m.Nexthops = []state.Nexthop{{Gateway: r.Nexthops[0].Gateway, Dev: r.Nexthops[0].Dev, Index: r.Nexthops[0].Index}}
			extra = append(extra, m)
			tos := r
			tos.TOS = 0x10
			extra = append(extra, tos)
		}
	}
	shuffled.Routes = append(shuffled.Routes, extra...)
	ordered := *shuffled
	ordered.Routes = slices.Clone(shuffled.Routes)
	// Dump order: by table, then address; longer prefixes of one
	// address first, as the kernel's trie gives them. Stable: routes
	// of one prefix keep their order.
	slices.SortStableFunc(ordered.Routes, func(a, b state.Route) int {
		if a.Dst.Addr().Is4() != b.Dst.Addr().Is4() {
			if a.Dst.Addr().Is4() {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(b.Dst.Bits(), a.Dst.Bits())
	})
	fs, err := New(shuffled)
	if err != nil {
		t.Fatal(err)
	}
	fo, err := New(&ordered)
	if err != nil {
		t.Fatal(err)
	}
	if fo.v4.tables[254] == nil || fs.v4.tables[254] == nil || len(fo.v4.tables[254].nodes) != len(fs.v4.tables[254].nodes) {
		t.Fatalf("main: %d nodes in order, %d shuffled", len(fo.v4.tables[254].nodes), len(fs.v4.tables[254].nodes))
	}
	lines := spec.Queries(10, 20000)
	for _, r := range extra {
		lines = append(lines, "route get "+r.Dst.Addr().String(), "route get "+r.Dst.Addr().String()+" tos 0x10")
	}
	sameAnswers(t, lines, fo, fs, "in order", "shuffled")
}

// newWith builds the FIB of s with the tuning variable *knob set to v.
func newWith(t *testing.T, s *state.State, knob *int, v int) *FIB {
	t.Helper()
	old := *knob
	*knob = v
	defer func() { *knob = old }()
	f, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sameAnswers fails the test at the first of the `ip route get` lines to
// which FIBs a and b (named aName and bName) answer differently.
func sameAnswers(t *testing.T, lines []string, a, b *FIB, aName, bName string) {
	t.Helper()
	for _, line := range lines {
		q, err := ParseQuery(strings.Fields(line)[2:])
		if err != nil {
			t.Fatal(err)
		}
		ra, rb := a.Lookup(q), b.Lookup(q)
		if string(ra.JSON()) != string(rb.JSON()) {
			t.Fatalf("%s:\n %s: %s\n %s: %s", line, aName, ra.JSON(), bName, rb.JSON())
		}
	}
}
