package fib

import (
	"testing"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// trimmed is st as a read scoped to q's lookup points keeps it, every
// table counted as big (Whole 1): of each table the rules reach, only the
// routes covering q's destination or source, and connected routes.
func trimmed(st *state.State, q Query) *state.State {
	c := *st
	c.Routes = append([]state.Route(nil), st.Routes...)
	(&kernel.RouteScope{RuleTables: true, Whole: 1, Points: LookupPoints(q)}).FilterState(&c)
	return &c
}

// TestLookupPointsCases: every verified case answers the same from the
// trimmed state as from the whole one, text and JSON.
func TestLookupPointsCases(t *testing.T) {
	recorded := readCases(t)
	eachRecorded(t, recorded, func(t *testing.T, st *state.State, whole *FIB, rq recordedQuery, q Query, _ bool) {
		part, err := New(trimmed(st, q))
		if err != nil {
			t.Fatal(err)
		}
		want, got := whole.Lookup(q), part.Lookup(q)
		if got.Text() != want.Text() || string(got.JSON()) != string(want.JSON()) {
			t.Errorf("ip %s: trimmed state answers\n%s%s\nwhole state\n%s%s", rq.args, got.Text(), got.JSON(), want.Text(), want.JSON())
		}
	})
}

// TestLookupPointsBig: on the full-table state with rules, random queries
// (output, with a source, input from an uplink) answer the same from the
// trimmed state.
func TestLookupPointsBig(t *testing.T) {
	st, spec := bigState(5, 20000, 4000, 50)
	whole, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	ran, kept := 0, 0
	for _, q := range bigQueries(st, spec, 300) {
		if q == nil {
			continue // a source of the other family
		}
		tr := trimmed(st, *q)
		ran, kept = ran+1, max(kept, len(tr.Routes))
		part, err := New(tr)
		if err != nil {
			t.Fatal(err)
		}
		want, got := whole.Lookup(*q), part.Lookup(*q)
		if got.Text() != want.Text() || string(got.JSON()) != string(want.JSON()) {
			t.Errorf("%+v: trimmed state answers\n%s\nwhole state\n%s", *q, got.Text(), want.Text())
		}
	}
	if ran < 200 || kept > 200 {
		t.Errorf("%d queries ran (want 200 or more), up to %d of %d routes kept (want a few)", ran, kept, len(st.Routes))
	}
}
