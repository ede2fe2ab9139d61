package engine

import (
	"bytes"
	"errors"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// QueryObserver is a Handle that can read a namespace for one route
// query without its big tables, and ask the kernel's own answer (the live
// kernel; see fib.Partial).
type QueryObserver interface {
	ObserveLeavingBig(scope *kernel.RouteScope) (*state.State, kernel.LeftOut, error)
	RouteAsker
	// NewRouteAsker is a RouteAsker for many queries (kernel.RouteAsker).
	NewRouteAsker() (RouteAsker, error)
}

// RouteAsker asks the kernel route queries: its answer (route get) and
// the route its lookup chose (fibmatch).
type RouteAsker interface {
	RouteGet(q kernel.RouteQuery) (kernel.RouteAnswer, error)
	RouteMatch(q kernel.RouteQuery) (state.Route, error)
}

func (l liveHandle) ObserveLeavingBig(scope *kernel.RouteScope) (*state.State, kernel.LeftOut, error) {
	return l.h.ObserveLeavingBig(scope)
}
func (l liveHandle) RouteGet(q kernel.RouteQuery) (kernel.RouteAnswer, error) { return l.h.RouteGet(q) }
func (l liveHandle) RouteMatch(q kernel.RouteQuery) (state.Route, error)      { return l.h.RouteMatch(q) }
func (l liveHandle) NewRouteAsker() (RouteAsker, error)                       { return l.h.NewRouteAsker() }

// LiveAnswer is the answer to one route query from a live namespace.
type LiveAnswer struct {
	fib.Result
	// Marks are the lines of tunroute's firewall marks the query got
	// (fib.ApplyMarks).
	Marks []string
	// ReadBig reports that the big tables were read after all (their
	// routes covering the query's addresses), the kernel's answer not
	// settling it.
	ReadBig bool
}

// LookupLive answers one route query from the namespace the engine works
// on, exactly as a read of every table would, at the cost of the tables
// the query's rules reach minus the big ones: a big table (more than
// kernel.DefaultWhole routes, a full BGP table) is not read; the kernel's
// own answer says what it decides (fib.Partial). When that does not
// settle the answer, the routes of the big tables covering the query's
// addresses are read after all (ObserveForLookup). cgroup, if set, is
// the cgroup sending the packet (fib.ApplyMarks).
func (e *Engine) LookupLive(q fib.Query, cgroup string) (LiveAnswer, error) {
	h, err := e.Host.Open(e.Netns)
	if err != nil {
		return LiveAnswer{}, err
	}
	defer h.Close()
	if qo, ok := h.(QueryObserver); ok {
		a, done, err := lookupLeavingBig(qo, q, cgroup)
		if err != nil || done {
			return a, err
		}
	}
	s, err := e.ObserveForLookup(q)
	if err != nil {
		return LiveAnswer{}, err
	}
	defer s.Close()
	a, err := answerWhole(s.Top(), q, cgroup)
	a.ReadBig = true
	return a, err
}

// answerWhole answers q from st, which holds every route q's lookup can
// reach.
func answerWhole(st *state.State, q fib.Query, cgroup string) (LiveAnswer, error) {
	f, err := fib.New(st)
	if err != nil {
		return LiveAnswer{}, err
	}
	a := LiveAnswer{Marks: fib.ApplyMarks(st.Firewall, &q, cgroup)}
	a.Result = f.Lookup(q)
	return a, nil
}

// ObserveForLookup observes for explaining the route lookup of q: of its
// family, the rules first, then of the tables they reach the small ones
// whole and of the big ones only the routes covering q's addresses
// (fib.LookupPoints). Exact for q (internal/fib's lazy tests); a batch of
// arbitrary queries wants Observe.
func (e *Engine) ObserveForLookup(q fib.Query) (*Session, error) {
	return e.observe(false, &kernel.RouteScope{RuleTables: true, Points: fib.LookupPoints(q), Family: familyOf(q)})
}

// lookupLeavingBig is LookupLive's first try; done reports that its
// answer stands.
func lookupLeavingBig(h QueryObserver, q fib.Query, cgroup string) (a LiveAnswer, done bool, err error) {
	st, left, err := h.ObserveLeavingBig(&kernel.RouteScope{RuleTables: true, Family: familyOf(q)})
	if err != nil {
		return LiveAnswer{}, false, err
	}
	if len(left.V4) == 0 && len(left.V6) == 0 {
		a, err := answerWhole(st, q, cgroup)
		return a, err == nil, err
	}
	a.Marks = fib.ApplyMarks(st.Firewall, &q, cgroup)
	a.Result, done, err = partialAnswer(h, st, left, q)
	return a, done, err
}

// partialAnswer answers q from st, read with the tables left out, and the
// kernel's answer; done reports that the answer stands (fib.Partial).
func partialAnswer(h RouteAsker, st *state.State, left kernel.LeftOut, q fib.Query) (r fib.Result, done bool, err error) {
	k, ok := askKernel(h, q)
	if !ok {
		return r, false, nil
	}
	p, err := fib.NewPartial(st, left.V4, left.V6, q, k)
	if err != nil {
		return r, false, err
	}
	r, done = p.Answer()
	return r, done, nil
}

// BatchFew answers a few lines of explain --batch (a script asking about
// a handful of destinations) from the namespace the engine works on as
// fib.Batch answers them from a read of the whole namespace, with one
// read that leaves the big tables out and the kernel's answer per query
// (LookupLive's way, one partial FIB for all: fib.NewPartials): on a
// full BGP table, a fraction of a millisecond a query instead of a
// second for the read. ok is false, and nothing is answered, when the
// namespace has no big table (a whole read costs little then and answers
// all), a line names a device (an input query, an oif: the whole read
// checks the name), or an answer needs more of a big table than the
// kernel tells; the caller then reads the namespace whole.
func (e *Engine) BatchFew(lines []byte) (out []byte, ok bool, err error) {
	h, err := e.Host.Open(e.Netns)
	if err != nil {
		return nil, false, err
	}
	defer h.Close()
	qo, isLive := h.(QueryObserver)
	if !isLive {
		return nil, false, nil
	}
	st, left, err := qo.ObserveLeavingBig(&kernel.RouteScope{RuleTables: true})
	if err != nil || len(left.V4) == 0 && len(left.V6) == 0 {
		return nil, false, err
	}
	// Each line's answer: an error's text, or the query (in qs) whose
	// answer it is.
	type answer struct {
		line  []byte
		err   error
		query int
	}
	var (
		answers []answer
		qs      []fib.Query
		ks      []fib.KernelLookup
	)
	asker, err := qo.NewRouteAsker()
	if err != nil {
		return nil, false, err
	}
	for len(lines) > 0 {
		var line []byte
		line, lines, _ = bytes.Cut(lines, []byte{'\n'})
		q, skip, err := fib.ParseBatchLine(line)
		switch {
		case skip:
			continue
		case err != nil:
			answers = append(answers, answer{line: line, err: err})
			continue
		case q.IIF != "" || q.OIF != "":
			return nil, false, nil
		}
		k, asked := askKernel(asker, q)
		if !asked || k.Match != nil && k.Match.Dst.Addr().Is6() && slices.Contains(left.V6, k.Match.Table) {
			return nil, false, nil // a big IPv6 table's route settles nothing (fib.Partial)
		}
		answers = append(answers, answer{query: len(qs)})
		qs, ks = append(qs, q), append(ks, k)
	}
	ps, err := fib.NewPartials(st, left.V4, left.V6, qs, ks)
	if err != nil {
		return nil, false, err
	}
	for _, a := range answers {
		if a.err != nil {
			out = fib.AppendBatchError(out, a.line, a.err)
			continue
		}
		r, done := ps[a.query].Answer()
		if !done {
			return nil, false, nil
		}
		out = append(r.AppendJSON(out), '\n')
	}
	return out, true, nil
}

// askKernel asks the kernel's answer to q and the route it chose; ok is
// false when the kernel could not be asked (a device it does not know:
// the model says what iproute2 says).
func askKernel(h RouteAsker, q fib.Query) (fib.KernelLookup, bool) {
	kq := kernel.RouteQuery{Dst: q.To, Src: q.From, IIF: q.IIF, OIF: q.OIF, Mark: q.Mark, TOS: q.TOS,
		IPProto: q.IPProto, HasIPProto: q.HasIPProto, SPort: q.SPort, DPort: q.DPort}
	if q.HasUID {
		uid := q.UID
		kq.UID = &uid
	}
	var k fib.KernelLookup
	a, err := h.RouteGet(kq)
	var ke *kernel.Error
	switch {
	case errors.As(err, &ke):
		k.Err = unix.ErrnoName(ke.Errno)
		return k, k.Err != ""
	case err != nil:
		return k, false
	}
	k.Dev, k.Gateway, k.PrefSrc, k.Type, k.Table = a.Dev, a.Gateway, a.Src, a.RouteType, a.Table
	if m, err := h.RouteMatch(kq); err == nil {
		k.Match = &m
	}
	return k, true
}

// familyOf is the address family of q's tables.
func familyOf(q fib.Query) uint8 {
	if q.To.Unmap().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
