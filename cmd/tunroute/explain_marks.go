package main

import (
	"fmt"
	"strings"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/state"
)

// takeCgroup removes "cgroup PATH" from explain's words: the kernel's
// `ip route get` has no such word, but tunroute's selectors mark a
// cgroup's packets in its firewall before routing them again.
func takeCgroup(args []string) ([]string, string, error) {
	var out []string
	cgroup := ""
	for i := 0; i < len(args); i++ {
		if args[i] != "cgroup" {
			out = append(out, args[i])
			continue
		}
		if i+1 >= len(args) {
			return nil, "", fmt.Errorf("explain: cgroup needs a value (a cgroup v2 path, e.g. system.slice/foo.service)")
		}
		i++
		cgroup = strings.Trim(args[i], "/")
	}
	return out, cgroup, nil
}

// applyMarks runs the query through the route-type output chain of
// tunroute's firewall, as the kernel does for a local packet: a rule that
// matches sets the mark (and the kernel routes the packet again with it).
// It returns the lines that tell what happened.
func applyMarks(fw *state.Firewall, q *fib.Query, cgroup string) []string {
	if fw == nil {
		return nil
	}
	var notes []string
	for ci := range fw.Chains {
		c := &fw.Chains[ci]
		if c.Name != compile.ChainSelectOutput {
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

func markRuleMatches(r *state.FwRule, q *fib.Query, cgroup string) bool {
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
