package fib

import (
	"fmt"

	"github.com/tunroute/tunroute/internal/nfteval"
	"github.com/tunroute/tunroute/internal/state"
)

// ApplyMarks runs a locally generated query through the firewall's
// route-type output chains, as the kernel does for a local packet: a rule
// that matches sets the mark, and the kernel routes the packet again with
// it (tunroute's port, uid and cgroup selectors work this way). cgroup is
// the sending socket's cgroup v2 path ("" for none). It returns the lines
// that tell what happened. A forwarded query (with iif) is not marked.
func ApplyMarks(fw *state.Firewall, q *Query, cgroup string) []string {
	if fw == nil {
		return nil
	}
	var notes []string
	for ci := range fw.Chains {
		c := &fw.Chains[ci]
		if c.Type != "route" || c.Hook != "output" || q.IIF != "" {
			continue
		}
		for i := range c.Rules {
			r := &c.Rules[i]
			if r.SetMarkMask == 0 || !markRuleMatches(r, q, cgroup) {
				continue
			}
			q.Mark = q.Mark&^r.SetMarkMask | r.SetMark
			notes = append(notes, fmt.Sprintf("firewall %s: %s  ->  mark 0x%x", c.Name, r.String(), q.Mark))
		}
	}
	if cgroup != "" && len(notes) == 0 {
		notes = append(notes, "firewall: no selector marks cgroup "+cgroup)
	}
	return notes
}

// markRuleMatches decides a rule with the firewall evaluator check uses,
// so that explain and check never differ on what a rule matches.
func markRuleMatches(r *state.FwRule, q *Query, cgroup string) bool {
	p := nfteval.Packet{Family: 4, Src: q.From, Dst: q.To, Proto: q.IPProto, SPort: q.SPort, DPort: q.DPort,
		Socket: true, UID: q.UID, Cgroup: cgroup, Mark: q.Mark}
	if q.To.Is6() {
		p.Family = 6
	}
	if !q.HasIPProto && p.Family == 4 {
		p.Proto = 17 // ip route get's default for IPv4
	}
	if r.UID != nil && !q.HasUID {
		return false // a query without uid names no socket owner
	}
	// A route chain at output sees no device yet.
	return len(r.OIF) == 0 && nfteval.Matches(r, &p)
}
