package plan

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
)

// destKey is a compact (table, destination) key without pointers: a
// million of them in a map cost the garbage collector nothing to scan.
type destKey struct {
	table uint32
	addr  [16]byte
	bits  int16
}

func keyOf(table uint32, p netip.Prefix) destKey {
	a := p.Addr().As16()
	bits := int16(p.Bits())
	if p.Addr().Is4() {
		bits |= 0x100 // keep 0.0.0.0/0 apart from ::/0
	}
	return destKey{table: table, addr: a, bits: bits}
}

// setIndex finds, for an observed route, the desired set entry it
// corresponds to.
type setIndex struct {
	sets []state.RouteSet
	// where maps a destination to set index << 32 | dst index; IPv4
	// destinations in tables below 2^24 use the faster 64-bit keys.
	where4 map[uint64]uint64
	where  map[destKey]uint64
	found  [][]bool
}

// key4 packs an IPv4 (table, prefix) into 64 bits when the table fits.
func key4(table uint32, p netip.Prefix) (uint64, bool) {
	if !p.Addr().Is4() || table >= 1<<24 {
		return 0, false
	}
	a := p.Addr().As4()
	return uint64(table)<<40 | uint64(a[0])<<32 | uint64(a[1])<<24 | uint64(a[2])<<16 | uint64(a[3])<<8 | uint64(p.Bits()), true
}

func newSetIndex(sets []state.RouteSet) *setIndex {
	n := 0
	for i := range sets {
		n += len(sets[i].Dsts)
	}
	x := &setIndex{sets: sets, where4: make(map[uint64]uint64, n), where: map[destKey]uint64{}, found: make([][]bool, len(sets))}
	for si := range sets {
		x.found[si] = make([]bool, len(sets[si].Dsts))
		t := sets[si].Template.Table
		for di, d := range sets[si].Dsts {
			v := uint64(si)<<32 | uint64(di)
			if k, ok := key4(t, d); ok {
				x.where4[k] = v
			} else {
				x.where[keyOf(t, d)] = v
			}
		}
	}
	return x
}

// match returns the desired route for o's place, if a set wants one there
// with the same kernel identity (metric, TOS), and marks it found.
func (x *setIndex) match(o *state.Route) (state.Route, bool) {
	if len(x.sets) == 0 {
		return state.Route{}, false
	}
	si, di, ok := x.lookup(o.Table, o.Dst)
	if !ok {
		return state.Route{}, false
	}
	d := x.sets[si].Route(o.Dst)
	if d.Key() != o.Key() {
		return state.Route{}, false
	}
	x.found[si][di] = true
	return d, true
}

// lookup returns the desired set and destination index for (table, dst).
func (x *setIndex) lookup(table uint32, dst netip.Prefix) (si, di int, ok bool) {
	if len(x.sets) == 0 {
		return 0, 0, false
	}
	var v uint64
	if k, small := key4(table, dst); small {
		v, ok = x.where4[k]
	} else {
		v, ok = x.where[keyOf(table, dst)]
	}
	return int(v >> 32), int(uint32(v)), ok
}

// missing returns, per desired set, an op adding the destinations no
// observed route matched.
func (x *setIndex) missing() []state.Op {
	var ops []state.Op
	for si := range x.sets {
		set := &x.sets[si]
		var dsts []netip.Prefix
		for di, f := range x.found[si] {
			if !f {
				dsts = append(dsts, set.Dsts[di])
			}
		}
		if len(dsts) == len(set.Dsts) {
			ops = append(ops, state.Op{Action: state.Add, RouteSet: set})
		} else if len(dsts) > 0 {
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
	var del []netip.Prefix
	for _, dst := range os.Dsts {
		k := state.RouteKey{Table: t.Table, Dst: dst, Src: t.Src, TOS: t.TOS, Metric: t.Metric}
		if len(want) > 0 {
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
		if si, di, ok := sets.lookup(t.Table, dst); ok {
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
