package health

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/compile"
)

// Abandoned are the addresses of the identities that carried a group's
// traffic in before and no longer do in after (a failover away from them,
// or a balance member dropped): their connections must be forgotten
// (kernel.ForgetConnections) so that masqueraded ones re-establish on the
// new path. Nothing when before is nil (the first apply).
func Abandoned(before, after *compile.Result) []netip.Addr {
	if before == nil || after == nil {
		return nil
	}
	now := map[string]map[string]bool{}
	for _, g := range after.Groups {
		now[g.Name] = map[string]bool{}
		for _, m := range g.Active {
			now[g.Name][m] = true
		}
	}
	left := map[string]bool{}
	for _, g := range before.Groups {
		for _, m := range g.Active {
			if active, ok := now[g.Name]; ok && !active[m] {
				left[m] = true
			}
		}
	}
	// A member that still carries another group's traffic is forgotten
	// too: its connections on an unchanged path lose nothing (the next
	// packet makes a new entry with the same mapping; TCP is picked up
	// mid-stream), while those of the group that moved would be stuck.
	var out []netip.Addr
	for _, id := range before.Identities {
		if left[id.Name] {
			for _, p := range id.Addrs {
				out = append(out, p.Addr())
			}
		}
	}
	return out
}

// AbandonedByNamespace is Abandoned for every namespace of a system (the
// top one and each routing domain, matched by domain name): by
// namespace, the addresses whose connections must be forgotten there.
// Nothing when before is nil (the first apply).
func AbandonedByNamespace(before, after *compile.System) map[string][]netip.Addr {
	if before == nil || after == nil {
		return nil
	}
	was := map[string]*compile.Result{}
	for _, d := range before.Domains {
		was[d.Name] = d.Result
	}
	out := map[string][]netip.Addr{}
	for _, d := range after.Domains {
		if gone := Abandoned(was[d.Name], d.Result); len(gone) > 0 {
			out[d.Netns] = gone
		}
	}
	return out
}
