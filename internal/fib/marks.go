package fib

import (
	"fmt"
	"strings"

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

func markRuleMatches(r *state.FwRule, q *Query, cgroup string) bool {
	v6 := q.To.Is6()
	if r.Family == 4 && v6 || r.Family == 6 && !v6 {
		return false
	}
	if r.Cgroup != "" {
		// socket cgroupv2 level N compares the socket's ancestor at level N.
		parts := strings.Split(cgroup, "/")
		level := state.CgroupLevel(r.Cgroup)
		if cgroup == "" || len(parts) < level || strings.Join(parts[:level], "/") != r.Cgroup {
			return false
		}
	}
	proto := q.IPProto
	if !q.HasIPProto && !v6 {
		proto = 17 // ip route get's default for IPv4
	}
	if r.Proto != 0 && r.Proto != proto {
		return false
	}
	if !inPorts(r.DPorts, q.DPort) || !inPorts(r.SPorts, q.SPort) {
		return false
	}
	if len(r.Daddr) > 0 {
		ok := false
		for _, p := range r.Daddr {
			ok = ok || p.Contains(q.To)
		}
		if !ok {
			return false
		}
	}
	if r.UID != nil && (!q.HasUID || q.UID < r.UID.Start || q.UID > r.UID.End) {
		return false
	}
	if r.MarkMask != 0 && q.Mark&r.MarkMask != r.Mark {
		return false
	}
	return len(r.OIF) == 0 && len(r.IIF) == 0 // a route chain at output has no interface yet
}

func inPorts(ps []state.PortRange, p uint16) bool {
	if len(ps) == 0 {
		return true
	}
	for _, r := range ps {
		if p >= r.Start && p <= r.End {
			return true
		}
	}
	return false
}
