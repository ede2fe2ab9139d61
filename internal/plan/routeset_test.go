package plan

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// compactOf does to an observed state what kernel.ObserveWith with
// CompactRoutes does: owned routes that differ only in their destination
// become one set each (of any size here).
func compactOf(s *state.State) *state.State {
	c := *s
	c.Routes = nil
	c.RouteSets = nil
	where := map[string]int{}
	for _, r := range s.Routes {
		if !r.Owned() || len(r.Nexthops) > 1 {
			c.Routes = append(c.Routes, r)
			continue
		}
		t := r
		t.Dst = netip.Prefix{}
		k := t.String() + "|" + boolStr(r.Is6())
		i, ok := where[k]
		if !ok {
			i = len(c.RouteSets)
			where[k] = i
			c.RouteSets = append(c.RouteSets, state.RouteSet{Template: t})
		}
		c.RouteSets[i].Dsts = append(c.RouteSets[i].Dsts, r.Dst)
	}
	return &c
}

func boolStr(b bool) string {
	if b {
		return "6"
	}
	return "4"
}

// routeTable is a kernel's routes by key, for carrying out plans with
// route sets.
type routeTable map[state.RouteKey]state.Route

func tableOf(s *state.State) routeTable {
	t := routeTable{}
	for _, r := range s.Routes {
		t[r.Key()] = r
	}
	for i := range s.RouteSets {
		for _, d := range s.RouteSets[i].Dsts {
			r := s.RouteSets[i].Route(d)
			t[r.Key()] = r
		}
	}
	return t
}

func (t routeTable) do(ops []state.Op) error {
	for _, op := range ops {
		var rs []state.Route
		switch {
		case op.Route != nil:
			rs = []state.Route{*op.Route}
		case op.RouteSet != nil:
			for _, d := range op.RouteSet.Dsts {
				rs = append(rs, op.RouteSet.Route(d))
			}
		default:
			continue
		}
		for _, r := range rs {
			_, there := t[r.Key()]
			switch op.Action {
			case state.Add:
				if there {
					return errors.New(op.String() + ": file exists")
				}
				t[r.Key()] = r
			case state.Replace:
				t[r.Key()] = r
			case state.Delete:
				if !there {
					return errors.New(op.String() + ": no such route")
				}
				delete(t, r.Key())
			}
		}
	}
	return nil
}

func (t routeTable) state() *state.State {
	s := &state.State{Version: state.Version}
	for _, r := range t {
		s.Routes = append(s.Routes, r)
	}
	slices.SortFunc(s.Routes, func(a, b state.Route) int {
		return a.Dst.Addr().Compare(b.Dst.Addr())*2 + cmpInt(a.Dst.Bits(), b.Dst.Bits())
	})
	return s
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestDiffObservedSets(t *testing.T) {
	d, o := setStates(20000)
	p, err := Diff(d, compactOf(o))
	if err != nil {
		t.Fatal(err)
	}
	add, change, del := p.Counts()
	if add != 200 || change != 0 || del != 200 || len(p.Ops) != 2 || p.Ops[0].RouteSet == nil || p.Ops[1].RouteSet == nil ||
		p.Ops[0].Action != state.Add || p.Ops[1].Action != state.Delete {
		t.Fatalf("1%% change of a 20k set observed as a set: %d add %d change %d delete:\n%s", add, change, del, p.Text())
	}
	k := tableOf(o)
	if err := k.do(p.Ops); err != nil {
		t.Fatal(err)
	}
	after := compactOf(k.state())
	if again, err := Diff(d, after); err != nil || !again.Empty() {
		t.Fatalf("after applying, the plan is not empty: %v\n%s", err, again.Text())
	}
	// Down deletes the set in one op.
	down := Down(after)
	if _, _, del := down.Counts(); del != 20000 || len(down.Ops) != 1 || down.Ops[0].RouteSet != &after.RouteSets[0] {
		t.Fatalf("down: %s", down.Text())
	}
	if err := k.do(down.Ops); err != nil || len(k) != 0 {
		t.Fatalf("after down: %v, %d routes left", err, len(k))
	}
	// Undoing the plan (what a rollback executes) restores the table.
	k = tableOf(after)
	if err := k.do(down.Ops); err != nil {
		t.Fatal(err)
	}
	var undo []state.Op
	for i := len(down.Ops) - 1; i >= 0; i-- {
		undo = append(undo, down.Ops[i].Inverse())
	}
	if err := k.do(undo); err != nil || len(k) != 20000 {
		t.Fatalf("undo: %v, %d routes", err, len(k))
	}
}

func TestDiffObservedSetAgainstRoutes(t *testing.T) {
	r := func(dst, dev string) state.Route { return route(dst, dev, 1000, state.Proto) }
	obs := &state.State{Version: state.Version}
	for _, dst := range []string{"10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"} {
		obs.Routes = append(obs.Routes, r(dst, "eth0"))
	}
	obs = compactOf(obs)
	if len(obs.RouteSets) != 1 || len(obs.Routes) != 0 {
		t.Fatalf("compactOf: %+v", obs)
	}
	des := &state.State{Version: state.Version, Routes: []state.Route{
		r("10.1.0.0/24", "eth0"), // as it is
		r("10.2.0.0/24", "wg0"),  // changed
		r("10.9.0.0/24", "eth0"), // new
	}}
	des.RouteSets = []state.RouteSet{{Template: r("0.0.0.0/0", "eth0"), Dsts: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/24")}}}
	des.RouteSets[0].Template.Dst = netip.Prefix{}
	p, err := Diff(des, obs)
	if err != nil {
		t.Fatal(err)
	}
	expectOps(t, "ops", p.Ops,
		"replace route 10.2.0.0/24 dev wg0 table 1000 scope link",
		"add route 10.9.0.0/24 dev eth0 table 1000 scope link",
		"delete routes 10.4.0.0/24 dev eth0 table 1000 scope link")
	if prev := p.Ops[0].PrevRoute; prev == nil || prev.Nexthops[0].Dev != "eth0" {
		t.Errorf("the replace must remember the observed route: %+v", prev)
	}

	// Someone else's routes observed as a set: equal ones are kept,
	// different ones are a conflict.
	foreign := *obs
	foreign.RouteSets = []state.RouteSet{obs.RouteSets[0]}
	foreign.RouteSets[0].Template.Protocol = 4
	p, err = Diff(des, &foreign)
	if err == nil {
		t.Fatalf("a foreign route where a changed one is wanted must conflict:\n%s", p.Text())
	}
	des.Routes = des.Routes[:1]
	p, err = Diff(des, &foreign)
	if err != nil || len(p.Kept) != 2 || len(p.Ops) != 0 {
		t.Fatalf("equal foreign routes are kept: %v\n%s", err, p.Text())
	}
}

func BenchmarkDiffObservedSet1M(b *testing.B) {
	d, o := setStates(1000000)
	co := compactOf(o)
	o = nil
	benchDiff(b, d, co, len(co.RouteSets[0].Dsts))
}

// TestSetIndexLookup checks the sorted index against a plain map, with
// IPv4 keys in small and large tables, IPv6 keys, and misses.
func TestSetIndexLookup(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var sets []state.RouteSet
	want := map[destKey]uint64{}
	for si, table := range []uint32{100, 1 << 30, 254, 100} {
		set := state.RouteSet{Template: state.Route{Table: table}}
		for di := 0; di < 3000; di++ {
			var p netip.Prefix
			if di%3 == 0 {
				var a [16]byte
				a[0], a[1], a[15] = 0x20, 0x01, byte(rng.Uint32())
				a[7] = byte(si)
				p = netip.PrefixFrom(netip.AddrFrom16(a), 40+rng.IntN(89)).Masked()
			} else {
				a := rng.Uint32()
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), rng.IntN(33)).Masked()
			}
			if _, dup := want[keyOf(table, p)]; dup {
				continue
			}
			want[keyOf(table, p)] = uint64(si)<<32 | uint64(len(set.Dsts))
			set.Dsts = append(set.Dsts, p)
		}
		sets = append(sets, set)
	}
	x := newSetIndex(sets)
	if !slices.IsSortedFunc(x.v4, func(a, b keyed) int { return cmpInt(int(a.K>>1), int(b.K>>1)) }) {
		t.Fatal("v4 keys not sorted")
	}
	type q struct {
		table uint32
		dst   netip.Prefix
	}
	var qs []q
	for _, s := range sets {
		for _, d := range s.Dsts {
			qs = append(qs, q{s.Template.Table, d}, q{s.Template.Table + 1, d})
		}
	}
	rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	pre := x.lookupMany(len(qs), func(i int) (uint32, netip.Prefix) { return qs[i].table, qs[i].dst })
	for i, q := range qs {
		v, ok := want[keyOf(q.table, q.dst)]
		si, di, ok2 := x.lookup(q.table, q.dst)
		if ok != ok2 || ok && (uint64(si)<<32|uint64(di)) != v {
			t.Fatalf("lookup(%d, %s) = %d %d %v, want %x %v", q.table, q.dst, si, di, ok2, v, ok)
		}
		if (pre[i] != 0) != ok || ok && pre[i]-1 != v {
			t.Fatalf("lookupMany(%d, %s) = %x, want %x %v", q.table, q.dst, pre[i], v, ok)
		}
	}
}

// TestLookupSetMergesLikeTheIndex: the merge of an observed set with the
// desired list answers as the index does, for lists in address order
// with several prefixes of one address (the kernel's longest first, the
// list's shortest first), and falls back to the index for two sets in
// one table and for lists out of order.
func TestLookupSetMergesLikeTheIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(n int) []netip.Prefix {
		var ps []netip.Prefix
		for range n {
			a := uint32(rng.IntN(64)) << 24
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), 0, 0, 0}), 6+rng.IntN(4)).Masked())
		}
		slices.SortFunc(ps, func(p, q netip.Prefix) int { return p.Compare(q) })
		return slices.Compact(ps)
	}
	longestFirst := func(ps []netip.Prefix) []netip.Prefix {
		ps = slices.Clone(ps)
		slices.SortStableFunc(ps, func(p, q netip.Prefix) int {
			if c := p.Addr().Compare(q.Addr()); c != 0 {
				return c
			}
			return q.Bits() - p.Bits()
		})
		return ps
	}
	for round := range 200 {
		sets := []state.RouteSet{{Template: state.Route{Table: 5}, Dsts: pick(40)}, {Template: state.Route{Table: 6}, Dsts: pick(40)}}
		switch round % 4 {
		case 1:
			sets[1].Template.Table = 5 // two sets in one table
		case 2:
			rng.Shuffle(len(sets[0].Dsts), func(i, j int) { sets[0].Dsts[i], sets[0].Dsts[j] = sets[0].Dsts[j], sets[0].Dsts[i] })
		}
		obs := longestFirst(pick(40))
		if round%4 == 3 {
			rng.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
		}
		got := newSetIndex(sets).lookupSet(5, obs)
		want := newSetIndex(sets).lookupMany(len(obs), func(i int) (uint32, netip.Prefix) { return 5, obs[i] })
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: lookupSet %x, lookupMany %x (observed %v, sets %v)", round, got, want, obs, sets)
		}
	}
}
