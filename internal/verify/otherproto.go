package verify

import (
	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/state"
)

// The kernel's route query (and so internal/fib) takes only TCP, UDP and
// ICMP as ipproto; real packets of other protocols (SCTP, GRE, ESP, ...)
// are routed all the same, with rules that name another protocol simply
// not matching. For them the evaluator asks a FIB whose rules are what
// the rule walk would see for that protocol and those ports.

func querySupported(proto uint8, fam int) bool {
	return proto == 6 || proto == 17 || fam == 4 && proto == 1 || fam == 6 && proto == 58
}

type otherKey struct {
	proto        uint8
	sport, dport uint16
}

// lookup answers q for packet p, in the evaluator's reused Result.
func (e *evaluator) lookup(q fib.Query, p *Packet) *fib.Result {
	if querySupported(p.Proto, p.Family) {
		e.fib.LookupInto(&q, &e.res)
		return &e.res
	}
	q.IPProto, q.HasIPProto, q.SPort, q.DPort = 0, false, 0, 0
	if !e.l4Rules {
		e.fib.LookupInto(&q, &e.res)
		return &e.res
	}
	k := otherKey{proto: p.Proto}
	if hasPorts(p.Proto) {
		k.sport, k.dport = p.SPort, p.DPort
	}
	f := e.other[k]
	if f == nil {
		st := *e.st
		st.Rules = nil
		for _, r := range e.st.Rules {
			match := true
			if r.IPProto != 0 {
				match = r.IPProto == p.Proto
			}
			if r.SPort != nil || r.DPort != nil {
				match = match && hasPorts(p.Proto) &&
					(r.SPort == nil || k.sport >= r.SPort.Start && k.sport <= r.SPort.End) &&
					(r.DPort == nil || k.dport >= r.DPort.Start && k.dport <= r.DPort.End)
			}
			r.IPProto, r.SPort, r.DPort = 0, nil, nil
			if !match {
				if !r.Invert {
					continue // never matches
				}
				// A `not` rule whose layer 4 selectors fail always matches.
				keep := state.NewRule(r.Family)
				keep.Priority, keep.Action, keep.Table, keep.Goto = r.Priority, r.Action, r.Table, r.Goto
				keep.SuppressPrefixLen, keep.SuppressIfGroup, keep.Protocol = r.SuppressPrefixLen, r.SuppressIfGroup, r.Protocol
				r = keep
			}
			st.Rules = append(st.Rules, r)
		}
		var err error
		if f, err = fib.New(&st); err != nil {
			f = e.fib
		}
		e.other[k] = f
	}
	f.LookupInto(&q, &e.res)
	return &e.res
}
