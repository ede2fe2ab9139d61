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
	f        *FIB
	q        Query
	kernel   KernelLookup
	bigMatch bool // the kernel's route is from a table left out
}

// NewPartial builds the FIB of s, a state whose tables leftOut4 (IPv4)
// and leftOut6 (IPv6) were not read but for the default routes of the
// IPv4 ones (kernel.LeftOut), for the query q the kernel answered k.
// When the kernel's route is from an IPv4 table left out, that table
// holds it for q's destination and nothing else; an IPv6 table left out
// stays missing (Answer). s is not modified.
func NewPartial(s *state.State, leftOut4, leftOut6 []uint32, q Query, k KernelLookup) (*Partial, error) {
	p := &Partial{q: q, kernel: k}
	m := k.Match
	if m != nil && m.Dst.Addr().Is4() && q.To.Unmap().Is4() && slices.Contains(leftOut4, m.Table) {
		p.bigMatch = true
		if m.Dst.Bits() > 0 { // a default route is among those read
			c := *s
			c.Routes = append(slices.Clip(s.Routes), *m)
			s = &c
		}
		leftOut4 = slices.DeleteFunc(slices.Clone(leftOut4), func(t uint32) bool { return t == m.Table })
	}
	f, err := build(s, leftOut4, leftOut6)
	if err != nil {
		return nil, err
	}
	if p.bigMatch {
		t := f.v4.tables[m.Table]
		t.only, t.onlyDst = true, v4u(q.To.Unmap())
	}
	p.f = f
	return p, nil
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
