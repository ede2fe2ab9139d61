package fib

import "github.com/tunroute/tunroute/internal/state"

// The parts of fib_rules_lookup that do not depend on the address family:
// what a matching rule's action does before any table is looked up, and
// whether a rule suppresses the route its table gave. ruleWalk4 and
// ruleWalk6 keep only their family's table lookup and result.

// walk is fib_rules_lookup: it visits the rules that match rf in order,
// runs their actions, and calls lookup for each rule whose table is to be
// looked up, until lookup says the walk is done. It returns the rule that
// ended the walk (-1 when none did) and the walk's error.
func (rs *rules) walk(f *FIB, rf *ruleFlow, sc *scratch, tr *tracer, v6 bool, lookup func(i int32, r *crule) (errno, bool)) (int32, errno) {
	if sc == nil {
		sc = &scratch{} // build time (gateway resolution) only
	}
	cur := rs.idx.collect(rf, sc.cursors(f))
	pos := int32(0)
	for {
		i := nextCandidate(cur, pos)
		if i < 0 {
			return -1, errNETUNREACH
		}
		pos = i + 1
		if !rs.list[i].match(rf) {
			continue
		}
		out, err := ruleLookup, errOK
		if r := &rs.list[i]; r.action != state.ActionLookup || (v6 && r.t6 == nil) || (!v6 && r.t4 == nil) {
			i, out, err = rs.act(i, rf, tr, v6) // the usual lookup rule goes straight on
			pos = i + 1
		}
		switch out {
		case ruleEnd:
			return i, err
		case ruleLookup:
			if err, done := lookup(i, &rs.list[i]); done {
				return i, err
			}
		}
	}
}

// ruleOutcome is what the walk does after a rule's action.
type ruleOutcome uint8

const (
	ruleNext   ruleOutcome = iota // go on with the rules after the returned one
	ruleLookup                    // look up the returned rule's table
	ruleEnd                       // the walk ends with the returned error
)

// act runs the action of the matching rule i, following gotos (each
// traced) to the rule that acts. It returns that rule's index, from which
// the walk goes on, and what to do with it.
func (rs *rules) act(i int32, rf *ruleFlow, tr *tracer, v6 bool) (int32, ruleOutcome, errno) {
	r := &rs.list[i]
	for {
		switch r.action {
		case state.ActionGoto:
			if r.gotoIdx < 0 || r.gotoIdx <= i {
				tr.rule(i, r, vUnresolved, 0, nil)
				return i, ruleNext, errOK
			}
			tr.rule(i, r, vGoto, 0, nil)
			i = r.gotoIdx
			r = &rs.list[i]
			if !r.match(rf) {
				tr.rule(i, r, vTargetNoMatch, 0, nil)
				return i, ruleNext, errOK
			}
		case state.ActionNop:
			tr.rule(i, r, vNop, 0, nil)
			return i, ruleNext, errOK
		case state.ActionLookup:
			if (v6 && r.t6 == nil) || (!v6 && r.t4 == nil) {
				tr.rule(i, r, vNoTable, r.table, nil)
				return i, ruleNext, errOK
			}
			return i, ruleLookup, errOK
		case state.ActionUnreachable:
			tr.rule(i, r, vActionUnreachable, 0, nil)
			return i, ruleEnd, errNETUNREACH
		case state.ActionProhibit:
			tr.rule(i, r, vActionProhibit, 0, nil)
			return i, ruleEnd, errACCES
		default: // blackhole and unknown actions
			tr.rule(i, r, vActionBlackhole, 0, nil)
			return i, ruleEnd, errINVAL
		}
	}
}

// suppressed is the verdict of the rule's suppress_prefixlength and
// suppress_ifgroup on the route its table gave (prefix length plen, first
// nexthop's device dev): vRoute when the route stands.
func (c *crule) suppressed(plen int, dev *link) verdict {
	if c.supPlen >= 0 && int32(plen) <= c.supPlen {
		return vSuppressedPlen
	}
	if c.supGroup >= 0 && dev != nil && int64(dev.group) == c.supGroup {
		return vSuppressedGroup
	}
	return vRoute
}
