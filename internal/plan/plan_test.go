package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

func route(dst, dev string, table uint32, proto state.Protocol) state.Route {
	return state.Route{Table: table, Type: state.RouteUnicast, Dst: pfx(dst), Protocol: proto, Scope: state.ScopeLink,
		Nexthops: []state.Nexthop{{Dev: dev}}}
}

func rule(prio uint32, from string, table uint32, proto state.Protocol) state.Rule {
	r := state.NewRule(4)
	r.Priority, r.Src, r.IIF, r.Table, r.Protocol = prio, pfx(from), "lo", table, proto
	return r
}

func observed() *state.State {
	return &state.State{Version: state.Version, Namespace: "t",
		Links: []state.Link{{Index: 1, Name: "lo"}, {Index: 2, Name: "eth0"}, {Index: 3, Name: "wg0"}},
		Addrs: []state.Addr{{Dev: "eth0", Prefix: pfx("10.1.0.2/24")}},
		Routes: []state.Route{
			route("10.1.0.0/24", "eth0", 254, 2),
			route("10.77.0.0/16", "eth0", 254, 4), // foreign, static
		},
		Rules: []state.Rule{rule(100, "10.1.0.2/32", 100, 0)}, // foreign
	}
}

func desired() *state.State {
	return &state.State{Version: state.Version,
		Addrs: []state.Addr{{Dev: "lo", Prefix: pfx("10.10.0.1/32"), Proto: state.Proto}},
		Routes: []state.Route{
			route("0.0.0.0/1", "wg0", 254, state.Proto),
			route("128.0.0.0/1", "wg0", 254, state.Proto),
			{Table: 1000, Type: state.RouteUnicast, Dst: pfx("0.0.0.0/0"), Protocol: state.Proto,
				Nexthops: []state.Nexthop{{Gateway: addr("10.1.0.1"), Dev: "eth0"}}},
			route("10.1.0.0/24", "eth0", 1000, state.Proto),
		},
		Rules: []state.Rule{rule(5000, "10.30.0.2/32", 1000, state.Proto)},
	}
}

// memKernel applies ops to an in-memory State with the kernel's
// uniqueness rules, and can be told to fail at one op.
type memKernel struct {
	s      *state.State
	failAt int // index over all ops ever executed; -1 never
	count  int
}

func (k *memKernel) Execute(ops []state.Op) ([]bool, error) {
	applied := make([]bool, len(ops))
	for i, op := range ops {
		if k.count == k.failAt {
			k.count++
			return applied, fmt.Errorf("%s: injected failure", op)
		}
		k.count++
		if err := k.one(op); err != nil {
			return applied, fmt.Errorf("%s: %w", op, err)
		}
		applied[i] = true
	}
	return applied, nil
}

func (k *memKernel) one(op state.Op) error {
	s := k.s
	switch {
	case op.Route != nil:
		return applyOp(&s.Routes, op.Route, op.Action, false, "no such process")
	case op.Rule != nil:
		// The kernel takes the same rule twice.
		return applyOp(&s.Rules, op.Rule, op.Action, true, "no such file or directory")
	case op.Addr != nil:
		return applyOp(&s.Addrs, op.Addr, op.Action, false, "cannot assign requested address")
	}
	return nil
}

// applyOp does an add, replace or delete of x on list as the kernel does
// for objects of x's kind: by key (the last in list with x's key), an add
// of a key already there failing unless dupOK, a replace putting x in its
// key's place or at the end, a delete of a key not there failing with
// the kind's own error, missing.
func applyOp[T any, PT interface {
	*T
	Key() K
}, K comparable](list *[]T, x PT, action state.Action, dupOK bool, missing string) error {
	idx := -1
	for i := range *list {
		if PT(&(*list)[i]).Key() == x.Key() {
			idx = i
		}
	}
	switch action {
	case state.Add:
		if idx >= 0 && !dupOK {
			return errors.New("file exists")
		}
		*list = append(*list, *x)
	case state.Replace:
		if idx < 0 {
			*list = append(*list, *x)
		} else {
			(*list)[idx] = *x
		}
	case state.Delete:
		if idx < 0 {
			return errors.New(missing)
		}
		*list = append((*list)[:idx], (*list)[idx+1:]...)
	}
	return nil
}

func opStrings(ops []state.Op) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.String())
	}
	return out
}

// expectOps fails the test unless ops are want, in order; what names the
// plan.
func expectOps(t *testing.T, what string, ops []state.Op, want ...string) {
	t.Helper()
	if got := opStrings(ops); !slices.Equal(got, want) {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDiffOrderAndIdempotence(t *testing.T) {
	obs := observed()
	p, err := Diff(desired(), obs)
	if err != nil {
		t.Fatal(err)
	}
	expectOps(t, "plan", p.Ops,
		"add address 10.10.0.1/32 dev lo",
		"add route 0.0.0.0/1 dev wg0 table main scope link",
		"add route 128.0.0.0/1 dev wg0 table main scope link",
		"add route 10.1.0.0/24 dev eth0 table 1000 scope link",
		"add route default via 10.1.0.1 dev eth0 table 1000",
		"add rule pref 5000 from 10.30.0.2/32 iif lo lookup 1000")
	k := &memKernel{s: obs.CloneLists(), failAt: -1}
	if err := Apply(k, p.Ops); err != nil {
		t.Fatal(err)
	}
	again, err := Diff(desired(), k.s)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Empty() {
		t.Fatalf("second plan not empty:\n%s", again.Text())
	}
}

// appliedKernel is an in-memory kernel with observed(), on which the plan
// to desired() has been applied.
func appliedKernel(t *testing.T) *memKernel {
	t.Helper()
	k := &memKernel{s: observed(), failAt: -1}
	p, _ := Diff(desired(), k.s)
	if err := Apply(k, p.Ops); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDiffChangesOnlyWhatChanged(t *testing.T) {
	k := appliedKernel(t)
	d := desired()
	d.Routes[1].Nexthops[0].Dev = "eth0"             // change one route
	d.Routes = append(d.Routes[:0], d.Routes[1:]...) // and drop another
	d.Rules = append(d.Rules, rule(5001, "10.1.0.2/32", 1001, state.Proto))
	p, err := Diff(d, k.s)
	if err != nil {
		t.Fatal(err)
	}
	expectOps(t, "plan", p.Ops,
		"replace route 128.0.0.0/1 dev eth0 table main scope link",
		"add rule pref 5001 from 10.1.0.2/32 iif lo lookup 1001",
		"delete route 0.0.0.0/1 dev wg0 table main scope link")
}

func TestDownRemovesOnlyOwned(t *testing.T) {
	k := appliedKernel(t)
	down := Down(k.s.CloneLists()) // ops point into the state they came from
	expectOps(t, "down", down.Ops,
		"delete rule pref 5000 from 10.30.0.2/32 iif lo lookup 1000",
		"delete route default via 10.1.0.1 dev eth0 table 1000",
		"delete route 0.0.0.0/1 dev wg0 table main scope link",
		"delete route 128.0.0.0/1 dev wg0 table main scope link",
		"delete route 10.1.0.0/24 dev eth0 table 1000 scope link",
		"delete address 10.10.0.1/32 dev lo")
	if err := Apply(k, down.Ops); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k.s, observed()) {
		t.Fatalf("after down the state differs from before apply:\n%+v\n%+v", k.s, observed())
	}
}

func TestForeignConflictAndKept(t *testing.T) {
	d := desired()
	d.Routes = append(d.Routes, route("10.77.0.0/16", "wg0", 254, state.Proto))
	_, err := Diff(d, observed())
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "route 10.77.0.0/16 dev eth0 table main proto static scope link") {
		t.Fatalf("want a conflict naming the foreign route, got %v", err)
	}
	d = desired()
	d.Routes = append(d.Routes, route("10.77.0.0/16", "eth0", 254, state.Proto))
	p, err := Diff(d, observed())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Kept) != 1 || strings.Contains(strings.Join(opStrings(p.Ops), "\n"), "10.77.") {
		t.Fatalf("an identical foreign route must be kept and not touched: %v %v", p.Kept, opStrings(p.Ops))
	}
}

// TestApplyRollsBack injects a failure at every position of a plan that
// adds, replaces and deletes; each time the state must come back exactly.
func TestApplyRollsBack(t *testing.T) {
	base := appliedKernel(t)
	d := desired()
	d.Routes[0].Nexthops[0].Dev = "eth0"
	d.Routes = d.Routes[:3]
	d.Addrs = nil
	d.Rules = append(d.Rules, rule(5001, "10.1.0.2/32", 1001, state.Proto))
	change, err := Diff(d, base.s.CloneLists())
	if err != nil {
		t.Fatal(err)
	}
	if len(change.Ops) < 4 {
		t.Fatalf("plan too small to test: %v", opStrings(change.Ops))
	}
	for at := 0; at < len(change.Ops); at++ {
		k := &memKernel{s: base.s.CloneLists(), failAt: at}
		err := Apply(k, change.Ops)
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("fail at %d: want the injected error, got %v", at, err)
		}
		if !reflect.DeepEqual(sorted(k.s), sorted(base.s)) {
			t.Fatalf("fail at %d: state not restored:\n%+v\nwant\n%+v", at, k.s, base.s)
		}
	}
}

// sorted orders routes and rules so that a restored state compares equal
// regardless of the order objects were re-added in.
func sorted(s *state.State) *state.State {
	c := s.CloneLists()
	keys := func(n int, key func(int) string) []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		for i := range idx {
			for j := i + 1; j < len(idx); j++ {
				if key(idx[j]) < key(idx[i]) {
					idx[i], idx[j] = idx[j], idx[i]
				}
			}
		}
		return idx
	}
	var rs []state.Route
	for _, i := range keys(len(c.Routes), func(i int) string { return c.Routes[i].String() }) {
		rs = append(rs, c.Routes[i])
	}
	c.Routes = rs
	var ru []state.Rule
	for _, i := range keys(len(c.Rules), func(i int) string { return c.Rules[i].String() }) {
		ru = append(ru, c.Rules[i])
	}
	c.Rules = ru
	return c
}

// TestDiffScales: the diff of 200k routes must stay linear; this is a
// correctness test on a large input (the benchmark prints the speed).
func TestDiffLarge(t *testing.T) {
	d, o := largeStates(200000)
	diffCounted(t, "1% change of 200k", d, o, 2000, 0, 2000)
}

// diffCounted diffs d against o and fails the test unless the plan adds,
// changes and deletes as many routes as given.
func diffCounted(t *testing.T, what string, d, o *state.State, add, change, del int) *Plan {
	t.Helper()
	p, err := Diff(d, o)
	if err != nil {
		t.Fatal(err)
	}
	if a, c, d := p.Counts(); a != add || c != change || d != del {
		t.Fatalf("%s: got %d add %d change %d delete, want %d %d %d", what, a, c, d, add, change, del)
	}
	return p
}

func largeStates(n int) (desired, observed *state.State) {
	desired = &state.State{Version: state.Version}
	observed = &state.State{Version: state.Version}
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 0})
		r := route(netip.PrefixFrom(a, 24).String(), "eth0", 1000, state.Proto)
		if i%100 != 0 {
			desired.Routes = append(desired.Routes, r)
			observed.Routes = append(observed.Routes, r)
			continue
		}
		observed.Routes = append(observed.Routes, r)
		r.Dst = netip.PrefixFrom(a, 25)
		desired.Routes = append(desired.Routes, r)
	}
	return desired, observed
}

func BenchmarkDiff1M(b *testing.B) {
	d, o := largeStates(1000000)
	benchDiff(b, d, o, len(o.Routes))
}

// benchDiff times Diff(d, o) and reports the observed routes (n) diffed
// per second.
func benchDiff(b *testing.B, d, o *state.State, n int) {
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Diff(d, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()*float64(b.N), "routes/s")
}

// setStates is largeStates with the desired side as one route set.
func setStates(n int) (desired, observed *state.State) {
	d, o := largeStates(n)
	set := state.RouteSet{Template: d.Routes[0]}
	set.Template.Dst = netip.Prefix{}
	for i := range d.Routes {
		set.Dsts = append(set.Dsts, d.Routes[i].Dst)
	}
	d.Routes = nil
	d.RouteSets = []state.RouteSet{set}
	return d, o
}

func TestDiffRouteSet(t *testing.T) {
	d, o := setStates(20000)
	p := diffCounted(t, "1% change of a 20k set", d, o, 200, 0, 200)
	if p.Ops[0].RouteSet == nil || len(p.Ops[0].RouteSet.Dsts) != 200 {
		t.Fatalf("the additions must be one set op: %v", p.Ops[0].String())
	}
	// Applied, the next plan is empty; the set is then also down-able.
	k := &memKernel{s: o.CloneLists(), failAt: -1}
	var expanded []state.Op
	for _, op := range p.Ops {
		if op.RouteSet == nil {
			expanded = append(expanded, op)
			continue
		}
		for _, dst := range op.RouteSet.Dsts {
			r := op.RouteSet.Route(dst)
			expanded = append(expanded, state.Op{Action: op.Action, Route: &r})
		}
	}
	if err := Apply(k, expanded); err != nil {
		t.Fatal(err)
	}
	again, err := Diff(d, k.s)
	if err != nil || !again.Empty() {
		t.Fatalf("after applying, the plan is not empty: %v\n%s", err, again.Text())
	}
	// A foreign route where the set wants one, different: a conflict.
	k.s.Routes[5].Protocol = 4
	k.s.Routes[5].Nexthops = []state.Nexthop{{Dev: "wg0"}}
	if _, err := Diff(d, k.s); err == nil {
		t.Fatal("a different foreign route at a set's destination must be a conflict")
	}
}

func BenchmarkDiffSet1M(b *testing.B) {
	d, o := setStates(1000000)
	benchDiff(b, d, o, len(o.Routes))
}

// TestDownSecondariesFirst: deleting an IPv4 primary address takes the
// secondaries of its subnet with it, so they are deleted first.
func TestDownSecondariesFirst(t *testing.T) {
	obs := &state.State{Version: state.Version, Namespace: "t",
		Links: []state.Link{{Index: 1, Name: "lo"}, {Index: 2, Name: "vx0"}},
		Addrs: []state.Addr{
			{Dev: "vx0", Prefix: pfx("10.100.0.2/24"), Proto: state.Proto},
			{Dev: "vx0", Prefix: pfx("2001:db8::2/64"), Proto: state.Proto, Flags: state.AddrSecondary}, // IPv6: "temporary"
			{Dev: "vx0", Prefix: pfx("10.100.0.22/24"), Proto: state.Proto, Flags: state.AddrSecondary},
		}}
	expectOps(t, "down", Down(obs).Ops,
		"delete address 10.100.0.22/24 dev vx0", "delete address 10.100.0.2/24 dev vx0", "delete address 2001:db8::2/64 dev vx0")
}
