package fib

import (
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"

	"github.com/tunroute/tunroute/internal/state"
)

// A live namespace can hold a table too big to read for one query (a
// full BGP table in main: a million routes take a second to dump, where
// the kernel answers in microseconds). explain then reads the other
// tables whole and asks the kernel two things: its answer (route get)
// and the route its lookup chose, with the table (fibmatch). The partial
// FIB built from that knows the big table's answer for this query's
// destination and nothing else of it; a lookup that needs anything else
// of a big table fails inside (errMissing), so the partial answer is
// taken only when it needed nothing more and is the kernel's own answer
// (Partial.Answer); otherwise explain reads the big tables after all.

// KernelLookup is what the kernel answered to one query.
type KernelLookup struct {
	// Err is the kernel's error as an errno name ("ENETUNREACH"), empty
	// when it answered with a route.
	Err string
	// The answer (route get), when Err is empty.
	Dev     string
	Gateway netip.Addr
	PrefSrc netip.Addr
	Type    state.RouteType
	Table   uint32
	// Match is the route the lookup chose, in its table (fibmatch); nil
	// when the kernel answered with an error, or made its route without
	// one (an oif given and nothing matched: the destination is taken to
	// be on that link).
	Match *state.Route
}

// Partial answers one query from a state missing the routes of some
// tables, and the kernel's own answer to it.
type Partial struct {
	f      *FIB
	q      Query
	kernel KernelLookup
	// bigMatch: the kernel's route is from big, a table left out. held
	// lists the tables left out that hold the kernel's route of some
	// query of the FIB's (NewPartials): shared by its Partials.
	bigMatch bool
	big      uint32
	held     []uint32
}

// NewPartial builds the FIB of s, a state whose tables leftOut4 (IPv4)
// and leftOut6 (IPv6) were not read but for the default routes of the
// IPv4 ones (kernel.LeftOut), for the query q the kernel answered k.
// When the kernel's route is from an IPv4 table left out, that table
// holds it for q's destination and nothing else; an IPv6 table left out
// stays missing (Answer). s is not modified.
func NewPartial(s *state.State, leftOut4, leftOut6 []uint32, q Query, k KernelLookup) (*Partial, error) {
	ps, err := NewPartials(s, leftOut4, leftOut6, []Query{q}, []KernelLookup{k})
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// NewPartials is NewPartial for several queries, ks[i] the kernel's
// answer to qs[i], with one FIB: a table left out holds the kernel's
// routes of all the queries answered from it, and while a query is
// answered it holds only that query's destination (the others'
// routes may be more specific, and unusable for it: the kernel chose
// past them) and the other tables left out are missing. Its Partials are
// answered one at a time.
func NewPartials(s *state.State, leftOut4, leftOut6 []uint32, qs []Query, ks []KernelLookup) ([]*Partial, error) {
	ps := make([]*Partial, len(qs))
	var held []uint32
	var added []state.Route
	seen := map[state.RouteKey]bool{}
	for i, q := range qs {
		p := &Partial{q: q, kernel: ks[i]}
		ps[i] = p
		m := ks[i].Match
		if m == nil || !m.Dst.Addr().Is4() || !q.To.Unmap().Is4() || !slices.Contains(leftOut4, m.Table) {
			continue
		}
		p.bigMatch, p.big = true, m.Table
		if !slices.Contains(held, m.Table) {
			held = append(held, m.Table)
		}
		// A default route is among those read.
		if k := m.Key(); m.Dst.Bits() > 0 && !seen[k] {
			seen[k] = true
			added = append(added, *m)
		}
	}
	if len(added) > 0 {
		c := *s
		c.Routes = append(slices.Clip(s.Routes), added...)
		s = &c
	}
	leftOut4 = slices.DeleteFunc(slices.Clone(leftOut4), func(t uint32) bool { return slices.Contains(held, t) })
	f, err := build(s, leftOut4, leftOut6)
	if err != nil {
		return nil, err
	}
	for _, id := range held {
		if f.v4.tables[id] == nil {
			f.leaveOut([]uint32{id}, nil)
		}
	}
	for _, p := range ps {
		p.f, p.held = f, held
	}
	return ps, nil
}

// focus readies the FIB's tables left out for p's query: the one its
// kernel's route is from holds only that, the others are missing.
func (p *Partial) focus() {
	for _, id := range p.held {
		t := p.f.v4.tables[id]
		t.missing = !p.bigMatch || id != p.big
		t.only = !t.missing
		if t.only {
			t.onlyDst = v4u(p.q.To.Unmap())
		}
	}
}

// leaveOut marks the tables of each family that the state did not hold
// (but for an IPv4 table's default routes): a lookup that reaches one
// fails with errMissing.
func (f *FIB) leaveOut(leftOut4, leftOut6 []uint32) {
	for _, id := range leftOut4 {
		if t := f.v4.tables[id]; t != nil {
			t.missing = true
		} else {
			f.v4.tables[id] = &table4{id: id, small: new(bart.Table[int32]), classes: f.v4.classes, missing: true}
		}
	}
	for _, id := range leftOut6 {
		if t := f.v6.tables[id]; t != nil {
			t.missing = true
		} else {
			f.v6.tables[id] = &table6{id: id, lpm: new(bart.Table[int32]), missing: true}
		}
	}
}

// miss notes a lookup in a table left out.
func (f *FIB) miss() errno {
	f.missed.Add(1)
	return errMissing
}

// Answer answers the query, and reports whether the answer is the one
// the whole state gives: it needed nothing of the tables left out but
// the kernel's route for the query's destination, it is the kernel's own
// answer, and nothing in it depends on more of a big table than that
// and its default routes: no hidden-state alternatives (otherwise,
// possible nexthops, uncertain notes), which can depend on other routes
// of the table.
//
// When it is not, the caller reads the big tables and asks again.
func (p *Partial) Answer() (Result, bool) {
	p.focus()
	p.f.missed.Store(0)
	r := p.f.Lookup(p.q)
	if p.f.missed.Load() > 0 || r.err == errMissing || len(r.Otherwise) > 0 || len(r.Possible) > 0 || len(r.Uncertain) > 0 {
		return r, false
	}
	k := &p.kernel
	if k.Err != "" {
		return r, r.Error != "" && r.Errno() == k.Err
	}
	if r.Error != "" || r.Dev != k.Dev || r.Gateway != k.Gateway || r.Type != k.Type || r.Table != k.Table {
		return r, false
	}
	if k.PrefSrc.IsValid() && r.PrefSrc != k.PrefSrc {
		return r, false
	}
	return r, true
}
