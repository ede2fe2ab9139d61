package plan

import (
	"net/netip"
	"slices"

	"github.com/tunroute/tunroute/internal/prefixkey"
	"github.com/tunroute/tunroute/internal/state"
)

// destKey is a (table, destination) key without pointers.
type destKey = prefixkey.Dest

var keyOf = prefixkey.DestOf

// setIndex finds, for an observed route, the desired set entry it
// corresponds to.
type setIndex struct {
	sets []state.RouteSet
	// tables are the sets' tables: a route of another table has no entry,
	// and when no observed route is in one of them (a list applied from
	// scratch) the index below is never built.
	tables []uint32
	// v4 holds the IPv4 destinations in tables below 2^24 as 64-bit keys
	// (key4) with set index << 32 | dst index, sorted by key: looked up
	// by binary search one at a time, or for many observed routes at once
	// by sorting their keys too and merging (lookupMany), which beats a
	// hash map of a million entries by far. The other destinations are
	// in where. Both are built on first use (built).
	v4    []keyed
	where map[destKey]uint64
	built bool
	found [][]bool
}

type keyed = prefixkey.Keyed

var key4 = prefixkey.Pack4

func newSetIndex(sets []state.RouteSet) *setIndex {
	x := &setIndex{sets: sets, found: make([][]bool, len(sets))}
	for si := range sets {
		x.found[si] = make([]bool, len(sets[si].Dsts))
		if t := sets[si].Template.Table; !x.hasTable(t) {
			x.tables = append(x.tables, t)
		}
	}
	return x
}

// hasTable reports whether a set is in table t.
func (x *setIndex) hasTable(t uint32) bool { return slices.Contains(x.tables, t) }

// index builds v4 and where.
func (x *setIndex) index() {
	if x.built {
		return
	}
	x.built = true
	n := 0
	for i := range x.sets {
		n += len(x.sets[i].Dsts)
	}
	x.where = map[destKey]uint64{}
	for si := range x.sets {
		t := x.sets[si].Template.Table
		for di, d := range x.sets[si].Dsts {
			v := uint64(si)<<32 | uint64(di)
			if k, ok := key4(t, d); ok {
				if x.v4 == nil {
					x.v4 = make([]keyed, 0, n)
				}
				x.v4 = append(x.v4, keyed{K: k, V: v})
			} else {
				x.where[keyOf(t, d)] = v
			}
		}
	}
	prefixkey.Sort(x.v4)
}

// lookup returns the desired set and destination index for (table, dst).
func (x *setIndex) lookup(table uint32, dst netip.Prefix) (si, di int, ok bool) {
	if !x.hasTable(table) {
		return 0, 0, false
	}
	x.index()
	var v uint64
	if k, small := key4(table, dst); small {
		i, found := prefixkey.Search(x.v4, k)
		if !found {
			return 0, 0, false
		}
		v, ok = x.v4[i].V, true
	} else {
		v, ok = x.where[keyOf(table, dst)]
	}
	return int(v >> 32), int(uint32(v)), ok
}

// bulkMin is the number of lookups from which lookupMany pays.
const bulkMin = 1024

// lookupMany looks up n destinations (at(i) gives the i-th) and returns
// for each set index << 32 | dst index, plus 1, or 0 when no set has it.
func (x *setIndex) lookupMany(n int, at func(i int) (uint32, netip.Prefix)) []uint64 {
	res := make([]uint64, n)
	var keys []keyed
	for i := 0; i < n; i++ {
		t, d := at(i)
		if !x.hasTable(t) {
			continue
		}
		x.index()
		if k, ok := key4(t, d); ok {
			if keys == nil {
				keys = make([]keyed, 0, n-i)
			}
			keys = append(keys, keyed{K: k, V: uint64(i)})
		} else if v, ok := x.where[keyOf(t, d)]; ok {
			res[i] = v + 1
		}
	}
	prefixkey.Sort(keys)
	j := 0
	for _, k := range keys {
		for j < len(x.v4) && x.v4[j].K < k.K {
			j++
		}
		if j == len(x.v4) {
			break
		}
		if x.v4[j].K == k.K {
			res[k.V] = x.v4[j].V + 1
		}
	}
	return res
}

// lookupSet is lookupMany for the destinations of an observed set in
// table t. When one desired set has that table and both lists are IPv4
// in address order (a list as config reads it, a set as the kernel dumps
// it) the two are merged as they are: no index, no keys to sort, which
// is most of a plan's cost for a million-route list.
func (x *setIndex) lookupSet(t uint32, dsts []netip.Prefix) []uint64 {
	si := -1
	for i := range x.sets {
		if x.sets[i].Template.Table == t {
			if si >= 0 {
				si = -2 // two sets: the index tells them apart
			} else if si == -1 {
				si = i
			}
		}
	}
	if si < 0 || !inAddressOrder4(dsts) || !inAddressOrder4(x.sets[si].Dsts) {
		return x.lookupMany(len(dsts), func(i int) (uint32, netip.Prefix) { return t, dsts[i] })
	}
	want := x.sets[si].Dsts
	res := make([]uint64, len(dsts))
	i, j := 0, 0
	for i < len(dsts) && j < len(want) {
		a, b := dsts[i].Addr(), want[j].Addr()
		switch c := a.Compare(b); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			// The prefixes of one address, in any order on either side
			// (the kernel gives the longest first): few.
			i2, j2 := i+1, j+1
			for i2 < len(dsts) && dsts[i2].Addr() == a {
				i2++
			}
			for j2 < len(want) && want[j2].Addr() == a {
				j2++
			}
			for o := i; o < i2; o++ {
				for d := j; d < j2; d++ {
					if dsts[o].Bits() == want[d].Bits() {
						res[o] = uint64(si)<<32 | uint64(d) + 1
						break
					}
				}
			}
			i, j = i2, j2
		}
	}
	return res
}

// inAddressOrder4 reports whether every prefix of ps is IPv4 and their
// addresses never decrease.
func inAddressOrder4(ps []netip.Prefix) bool {
	var last uint32
	for _, p := range ps {
		a := p.Addr()
		if !a.Is4() {
			return false
		}
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if v < last {
			return false
		}
		last = v
	}
	return true
}

// match returns the desired route for o's place, if a set wants one there
// with the same kernel identity (metric, TOS), and marks it found. pre,
// when not nil, holds lookupMany's answers for the observed routes, and
// o is the i-th.
func (x *setIndex) match(o *state.Route, pre []uint64, i int) (state.Route, bool) {
	if len(x.sets) == 0 {
		return state.Route{}, false
	}
	var si, di int
	if pre != nil {
		if pre[i] == 0 {
			return state.Route{}, false
		}
		si, di = int((pre[i]-1)>>32), int(uint32(pre[i]-1))
	} else {
		var ok bool
		if si, di, ok = x.lookup(o.Table, o.Dst); !ok {
			return state.Route{}, false
		}
	}
	d := x.sets[si].Route(o.Dst)
	if d.Key() != o.Key() {
		return state.Route{}, false
	}
	x.found[si][di] = true
	return d, true
}

// lookupRoutes is lookupMany for observed routes, or nil when they are
// too few for it to pay.
func (x *setIndex) lookupRoutes(rs []state.Route) []uint64 {
	if len(rs) < bulkMin || len(x.sets) == 0 {
		return nil
	}
	return x.lookupMany(len(rs), func(i int) (uint32, netip.Prefix) { return rs[i].Table, rs[i].Dst })
}

// missing returns, per desired set, an op adding the destinations no
// observed route matched.
func (x *setIndex) missing() []state.Op {
	var ops []state.Op
	for si := range x.sets {
		set := &x.sets[si]
		// Counted first: a set applied from scratch (nothing found) is
		// added as it is, without a copy of its million destinations.
		n := 0
		for _, f := range x.found[si] {
			if !f {
				n++
			}
		}
		switch {
		case n == 0:
		case n == len(set.Dsts):
			ops = append(ops, state.Op{Action: state.Add, RouteSet: set})
		default:
			dsts := make([]netip.Prefix, 0, n)
			for di, f := range x.found[si] {
				if !f {
					dsts = append(dsts, set.Dsts[di])
				}
			}
			ops = append(ops, state.Op{Action: state.Add, RouteSet: &state.RouteSet{Template: set.Template, Dsts: dsts}})
		}
	}
	return ops
}

// opRoute is the route an op is about, or a set's template.
func opRoute(op *state.Op) *state.Route {
	if op.RouteSet != nil {
		return &op.RouteSet.Template
	}
	return op.Route
}

// observedSet diffs the routes of an observed set (kernel.ObserveWith
// keeps tunroute's own routes that way) like observed routes: each is
// matched against the desired routes and sets, and the owned ones nobody
// wants are deleted, as one set op. A desired set whose template equals
// the observed one costs a lookup per destination and no allocation.
func (b *builder) observedSet(os *state.RouteSet, want map[state.RouteKey]*state.Route, found map[state.RouteKey]bool,
	sets *setIndex, check func(o, d *state.Route) error) error {
	t := &os.Template
	owned := t.Owned()
	// same[si]: whether desired set si's template equals os's, so that
	// their routes to one destination are equal (0 unknown, 1 yes, 2 no).
	same := make([]uint8, len(sets.sets))
	// Only a desired route of the same table, metric, TOS and source can
	// have the key of one of the set's routes.
	// They are few (an identity's own routes beside its list): a scan of
	// their destinations is cheaper than a map lookup per set route.
	var wantDsts []netip.Prefix
	for k := range want {
		if k.Table == t.Table && k.Metric == t.Metric && k.TOS == t.TOS && k.Src == t.Src {
			wantDsts = append(wantDsts, k.Dst)
		}
	}
	wantSome := len(wantDsts) > 0
	wanted := func(dst netip.Prefix) bool {
		if len(wantDsts) > 16 {
			return true // ask the map
		}
		return slices.Contains(wantDsts, dst)
	}
	var pre []uint64
	if len(sets.sets) > 0 {
		pre = sets.lookupSet(t.Table, os.Dsts)
	}
	var del []netip.Prefix
	for i, dst := range os.Dsts {
		if wantSome && wanted(dst) {
			k := state.RouteKey{Table: t.Table, Dst: dst, Src: t.Src, TOS: t.TOS, Metric: t.Metric}
			if d, wanted := want[k]; wanted {
				found[k] = true
				o := new(state.Route)
				*o = os.Route(dst)
				if err := check(o, d); err != nil {
					return err
				}
				continue
			}
		}
		if pre != nil && pre[i] != 0 {
			si, di := int((pre[i]-1)>>32), int(uint32(pre[i]-1))
			dt := &sets.sets[si].Template
			if dt.Src == t.Src && dt.TOS == t.TOS && dt.Metric == t.Metric {
				sets.found[si][di] = true
				if same[si] == 0 {
					same[si] = 2
					d, o := sets.sets[si].Route(dst), os.Route(dst)
					if d.Equal(&o) {
						same[si] = 1
					}
				}
				if owned && same[si] == 1 {
					continue
				}
				o, d := new(state.Route), new(state.Route)
				*o, *d = os.Route(dst), sets.sets[si].Route(dst)
				if err := check(o, d); err != nil {
					return err
				}
				continue
			}
		}
		if owned {
			del = append(del, dst)
		}
	}
	switch {
	case len(del) == 0:
	case len(del) == len(os.Dsts):
		b.delRoutes = append(b.delRoutes, state.Op{Action: state.Delete, RouteSet: os})
	default:
		b.delRoutes = append(b.delRoutes, state.Op{Action: state.Delete, RouteSet: &state.RouteSet{Template: os.Template, Dsts: del}})
	}
	return nil
}
