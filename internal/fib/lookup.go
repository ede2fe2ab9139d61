package fib

import (
	"github.com/tunroute/tunroute/internal/state"
)

// scratch is per-goroutine working memory for lookups.
type scratch struct {
	cur       [][]int32
	forceMode int // 0: the snapshot's IPv4 mode; 1: merged; 2: unmerged
	// walk6: use the IPv6 rule list as it is rather than the fast path
	// the kernel takes while no IPv6 rule was ever added.
	walk6 bool
	// noOrphans6: IPv6 lookups pass over the source routes of nodes
	// without plain routes; orphan6 records that a lookup used one.
	noOrphans6, orphan6 bool
	// saddrAlt4: the source came from a nexthop object whose cached
	// source may have been recomputed; useSaddrAlt4 takes that one.
	saddrAlt4, useSaddrAlt4 bool
	tr                      tracer
	alt                     Result
}

func newScratch(f *FIB) *scratch {
	return &scratch{cur: make([][]int32, 0, f.maxCursors+4)}
}

func (sc *scratch) cursors(f *FIB) [][]int32 {
	if cap(sc.cur) < f.maxCursors+4 {
		sc.cur = make([][]int32, 0, f.maxCursors+4)
	}
	return sc.cur[:0]
}

func (sc *scratch) tracer(r *Result) *tracer {
	if sc == nil {
		return nil
	}
	sc.tr.r = r
	return &sc.tr
}

// Lookup answers q like `ip route get`.
func (f *FIB) Lookup(q Query) Result {
	var r Result
	f.LookupInto(&q, &r)
	return r
}

// LookupInto answers q into r, reusing r's slices: with a Result reused
// across calls a lookup does not allocate.
func (f *FIB) LookupInto(q *Query, r *Result) {
	sc := f.scratch.Get().(*scratch)
	f.lookup(q, r, sc)
	f.scratch.Put(sc)
}

func (f *FIB) lookup(q *Query, r *Result, sc *scratch) {
	r.reset(f, q)
	var qf qflow
	if !f.resolve(q, &qf, r) {
		return
	}
	sc.forceMode = 0
	sc.orphan6, sc.saddrAlt4 = false, false
	f.run(&qf, r, sc)
	if !qf.v6 && sc.saddrAlt4 {
		sc.useSaddrAlt4 = true
		f.otherwise(q, &qf, r, sc, UncertainNexthopSource, ifAddrChanged4)
		sc.useSaddrAlt4 = false
	}
	if qf.v6 && sc.orphan6 {
		sc.noOrphans6 = true
		f.otherwise(q, &qf, r, sc, UncertainOrphanSubtree, ifOrphanSubtree)
		sc.noOrphans6 = false
	}
	if !qf.v6 {
		if _, known := f.merged(); !known && (qf.iif != nil || f.localCovers(&qf)) {
			sc.forceMode = 2
			f.otherwise(q, &qf, r, sc, "IPv4 rules look never changed, so the answer assumes the kernel still merges table local into main; "+
				"if they were ever added or deleted in this namespace, the answer is the one \"otherwise\" shows", ifRulesChanged4)
			sc.forceMode = 0
		}
	}
	if qf.v6 && f.v6.walked != nil {
		sc.walk6 = true
		f.otherwise(q, &qf, r, sc, "IPv6 rules were deleted but none looks added, so the answer assumes the kernel still looks up tables local and main directly, as it does until a rule is added; "+
			"if one was ever added in this namespace, the remaining rules are walked and the answer is the one \"otherwise\" shows", ifRulesAdded6)
		sc.walk6 = false
	}
	for _, n := range f.assumedRules {
		r.addUncertain(n)
	}
}

// Conditions of Result.Otherwise.
const (
	ifRulesChanged4 = "IPv4 rules were ever added or deleted in this namespace"
	ifRulesAdded6   = "an IPv6 rule was ever added in this namespace"
	ifAddrChanged4  = "an IPv4 address was added or deleted in this namespace after the nexthop object was made"
	ifOrphanSubtree = "the source-specific route was added before a plain route of its prefix that is gone now"
)

// otherwise answers q again under the other reading of what the snapshot
// cannot tell (which the caller set in sc), and when that answer differs
// notes why r is uncertain and adds the answer as r's otherwise, under
// the condition cond.
func (f *FIB) otherwise(q *Query, qf *qflow, r *Result, sc *scratch, uncertain, cond string) {
	alt := &sc.alt
	alt.reset(f, q)
	f.run(qf, alt, sc)
	if !sameAnswer(r, alt) {
		r.addUncertain(uncertain)
		r.Otherwise = append(r.Otherwise, Otherwise{If: cond, Answer: alt.AppendAnswerJSON(nil), Line: string(alt.appendVerdictLine(nil))})
	}
}

func (f *FIB) run(qf *qflow, r *Result, sc *scratch) {
	switch {
	case qf.v6 && qf.iif != nil:
		f.input6(qf, r, sc)
	case qf.v6:
		f.output6(qf, r, sc)
	case qf.iif != nil:
		f.input4(qf, r, sc)
	default:
		f.output4(qf, r, sc)
	}
}

// localCovers reports whether table local has a route covering the
// query's destination or source (only then can the merged and unmerged
// IPv4 lookups differ).
func (f *FIB) localCovers(qf *qflow) bool {
	t := f.v4.tables[state.TableLocal]
	if t == nil {
		return false
	}
	if t.missing {
		return true // perhaps: the other reading is answered too
	}
	if _, ok := t.lookup(v4u(qf.dst)); ok {
		return true
	}
	if qf.src.IsValid() {
		if _, ok := t.lookup(v4u(qf.src)); ok {
			return true
		}
	}
	return false
}

func sameAnswer(a, b *Result) bool {
	return a.Error == b.Error && a.Type == b.Type && a.Dst == b.Dst && a.Gateway == b.Gateway &&
		a.Dev == b.Dev && a.Table == b.Table && a.PrefSrc == b.PrefSrc && a.Cache == b.Cache && a.TOS == b.TOS
}

// resolve checks the query against the FIB's devices and fills qf.
func (f *FIB) resolve(q *Query, qf *qflow, r *Result) bool {
	if !q.To.IsValid() {
		r.fail(errINVAL)
		r.Error = "need a destination address"
		return false
	}
	qf.dst = q.To.Unmap()
	qf.v6 = qf.dst.Is6()
	r.Family = 4
	if qf.v6 {
		r.Family = 6
	}
	if q.From.IsValid() {
		qf.src = q.From.Unmap()
		if qf.src.Is6() != qf.v6 {
			r.fail(errINVAL)
			r.Error = "from is not of the destination's address family"
			return false
		}
	}
	if q.IIF != "" {
		if qf.iif = f.byName[q.IIF]; qf.iif == nil {
			r.err = errNoDevice
			r.Error = "Cannot find device \"" + q.IIF + "\""
			return false
		}
	}
	if q.OIF != "" {
		if qf.oif = f.byName[q.OIF]; qf.oif == nil {
			r.err = errNoDevice
			r.Error = "Cannot find device \"" + q.OIF + "\""
			return false
		}
	}
	qf.mark, qf.uid, qf.uidSet = q.Mark, q.UID, q.HasUID
	qf.tos, qf.proto, qf.protoSet = q.TOS, q.IPProto, q.HasIPProto
	qf.sport, qf.dport, qf.fibmatch = q.SPort, q.DPort, q.FibMatch
	if q.HasIPProto {
		ok := q.IPProto == protoTCP || q.IPProto == protoUDP
		if qf.v6 {
			ok = ok || q.IPProto == protoICMPv6
		} else {
			ok = ok || q.IPProto == protoICMP
		}
		if !ok {
			r.fail(errPROTO)
			return false
		}
	}
	if !qf.v6 {
		r.Mark = q.Mark
		if qf.src.IsValid() && !qf.src.IsUnspecified() {
			r.From = qf.src
		}
	}
	return true
}
