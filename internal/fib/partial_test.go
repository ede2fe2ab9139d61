package fib

import (
	"fmt"
	"github.com/tunroute/tunroute/internal/fib/fibbench"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// kernelOf answers q from the whole FIB as the kernel would to route get
// and fibmatch: what explain asks of a live namespace.
func kernelOf(t *testing.T, whole *FIB, st *state.State, q Query) KernelLookup {
	t.Helper()
	r := whole.Lookup(q)
	if r.Error != "" {
		return KernelLookup{Err: r.Errno()}
	}
	k := KernelLookup{Dev: r.Dev, Gateway: r.Gateway, PrefSrc: r.PrefSrc, Type: r.Type, Table: r.Table}
	fq := q
	fq.FibMatch = true
	m := whole.Lookup(fq)
	if m.Error != "" {
		return k // a route the kernel made without a table's (oif given, nothing matched)
	}
	// While no IPv4 rule was changed, table local is merged into main and
	// the kernel names main for its routes too.
	for _, table := range []uint32{m.Table, state.TableLocal} {
		for i := range st.Routes {
			rt := &st.Routes[i]
			if k.Match == nil && rt.Table == table && rt.Dst == m.DstPrefix && rt.TOS == m.TOS && rt.Metric == m.Metric &&
				(!m.SrcPrefix.IsValid() || rt.Src == m.SrcPrefix) {
				c := *rt
				c.Table = m.Table
				k.Match = &c
			}
		}
	}
	if k.Match == nil {
		t.Fatalf("%+v: the whole state's route %s table %d is not among its routes", q, m.DstPrefix, m.Table)
	}
	return k
}

// without is st without the routes of the tables left out, but for the
// IPv4 default routes (kernel.LeftOut).
func without(st *state.State, left4, left6 []uint32) *state.State {
	c := *st
	c.Routes = nil
	for _, r := range st.Routes {
		left := left4
		if !r.Dst.Addr().Is4() {
			left = left6
		}
		if !slices.Contains(left, r.Table) || r.Dst.Addr().Is4() && r.Dst.Bits() == 0 {
			c.Routes = append(c.Routes, r)
		}
	}
	return &c
}

// tablesOf lists the tables holding routes, per family.
func tablesOf(st *state.State) (v4, v6 []uint32) {
	for _, r := range st.Routes {
		if r.Dst.Addr().Is4() && !slices.Contains(v4, r.Table) {
			v4 = append(v4, r.Table)
		} else if r.Dst.Addr().Is6() && !slices.Contains(v6, r.Table) {
			v6 = append(v6, r.Table)
		}
	}
	return v4, v6
}

// partialAgrees answers q from st without left4/left6 and the kernel's
// answer; when the partial FIB confirms its answer, that answer must be
// the whole state's, text and JSON. It reports whether it confirmed.
func partialAgrees(t *testing.T, whole *FIB, st *state.State, q Query, left4, left6 []uint32, what string) bool {
	t.Helper()
	k := kernelOf(t, whole, st, q)
	p, err := NewPartial(without(st, left4, left6), left4, left6, q, k)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got, ok := p.Answer()
	if !ok {
		return false
	}
	want := whole.Lookup(q)
	if got.Text() != want.Text() || string(got.JSON()) != string(want.JSON()) {
		t.Errorf("%s: tables %v %v left out, the partial FIB confirms\n%s%s\nthe whole state answers\n%s%s",
			what, left4, left6, got.Text(), got.JSON(), want.Text(), want.JSON())
	}
	return true
}

// TestPartialCases: every verified case, with each of its tables left out
// in turn and with all of them left out: whatever a partial FIB confirms
// is the whole state's answer.
func TestPartialCases(t *testing.T) {
	recorded := readCases(t)
	confirmed, asked := 0, 0
	for i := 1; i <= 62; i++ {
		name := "T" + twoDigits(i)
		st := buildCase(t, name).state()
		whole, err := New(st)
		if err != nil {
			t.Fatal(err)
		}
		t4, t6 := tablesOf(st)
		for _, rq := range recorded[name] {
			words, _ := splitIPArgs(rq.args)
			q, err := ParseQuery(words)
			if err != nil || q.FibMatch {
				continue
			}
			what := name + ": ip route get " + rq.args
			for _, id := range t4 {
				asked++
				if partialAgrees(t, whole, st, q, []uint32{id}, nil, what) {
					confirmed++
				}
			}
			for _, id := range t6 {
				asked++
				if partialAgrees(t, whole, st, q, nil, []uint32{id}, what) {
					confirmed++
				}
			}
			asked++
			if partialAgrees(t, whole, st, q, t4, t6, what) {
				confirmed++
			}
		}
	}
	t.Logf("%d of %d partial answers confirmed", confirmed, asked)
	if confirmed < asked/4 {
		t.Errorf("only %d of %d partial answers confirmed: the fast path would rarely serve", confirmed, asked)
	}
}

// TestPartialBig: on the full-table state with rules, the tables holding
// more than 1,000 routes left out, random queries (output, with a
// source, input from an uplink): whatever a partial FIB confirms is the
// whole state's answer, and most output queries are confirmed.
func TestPartialBig(t *testing.T) {
	st, spec := bigState(5, 20000, 4000, 50)
	whole, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	count := map[[2]uint32]int{}
	for _, r := range st.Routes {
		fam := uint32(4)
		if !r.Dst.Addr().Is4() {
			fam = 6
		}
		count[[2]uint32{fam, r.Table}]++
	}
	var left4, left6 []uint32
	for k, n := range count {
		if n > 1000 && k[0] == 4 {
			left4 = append(left4, k[1])
		} else if n > 1000 {
			left6 = append(left6, k[1])
		}
	}
	if len(left4) == 0 || len(left6) == 0 {
		t.Fatalf("no big table: %v", count)
	}
	part := without(st, left4, left6)
	confirmed := [3]int{}
	ran := [3]int{}
	for i, q := range bigQueries(st, spec, 600) {
		if q == nil {
			continue
		}
		ran[i%3]++
		k := kernelOf(t, whole, st, *q)
		p, err := NewPartial(part, left4, left6, *q, k)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := p.Answer()
		if !ok {
			continue
		}
		confirmed[i%3]++
		want := whole.Lookup(*q)
		if got.Text() != want.Text() || string(got.JSON()) != string(want.JSON()) {
			t.Errorf("%+v: the partial FIB confirms\n%s\nthe whole state answers\n%s", q, got.Text(), want.Text())
		}
	}
	t.Logf("confirmed of output, with a source, input: %v of %v", confirmed, ran)
	if confirmed[0] < ran[0]/3 {
		t.Errorf("only %d of %d output queries confirmed", confirmed[0], ran[0])
	}

	// The same queries with one FIB for all (NewPartials, explain --batch
	// of a few lines): the big tables hold the kernel's routes of every
	// query, and each confirmed answer is still the whole state's.
	var qs []Query
	var ks []KernelLookup
	for _, q := range bigQueries(st, spec, 600) {
		if q != nil {
			qs = append(qs, *q)
			ks = append(ks, kernelOf(t, whole, st, *q))
		}
	}
	ps, err := NewPartials(part, left4, left6, qs, ks)
	if err != nil {
		t.Fatal(err)
	}
	shared := 0
	for i, p := range ps {
		got, ok := p.Answer()
		if !ok {
			continue
		}
		shared++
		want := whole.Lookup(qs[i])
		if got.Text() != want.Text() || string(got.JSON()) != string(want.JSON()) {
			t.Errorf("%+v: one FIB for all confirms\n%s\nthe whole state answers\n%s", qs[i], got.Text(), want.Text())
		}
	}
	single := confirmed[0] + confirmed[1] + confirmed[2]
	t.Logf("one FIB for all: %d confirmed, one FIB a query: %d", shared, single)
	if shared < single*9/10 {
		t.Errorf("one FIB for all confirmed %d, one FIB a query %d", shared, single)
	}
}

// bigQueries are n queries of the full-table benchmark (fibbench), by
// turns plain output, output with a local source, and input from the last
// link; the i-th is of kind i%3 (nil where the source is of the other
// family).
func bigQueries(st *state.State, spec *fibbench.Spec, n int) []*Query {
	var out []*Query
	for i, line := range spec.Queries(9, n) {
		words := strings.Fields(line)
		if len(words) > 2 && words[0] == "route" && words[1] == "get" {
			words = words[2:]
		}
		switch i % 3 {
		case 1:
			words = append(words, "from", st.Addrs[len(st.Addrs)-1].Prefix.Addr().String())
		case 2:
			words = append(words, "iif", st.Links[len(st.Links)-1].Name, "from", fmt.Sprintf("192.0.2.%d", i%250+1))
		}
		q, err := ParseQuery(words)
		if err != nil {
			out = append(out, nil)
			continue
		}
		out = append(out, &q)
	}
	return out
}
