package verify

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
)

// groupMembers are the identities of the config's failover and balance
// groups, in config order, each once: each can fail its health check (or
// lose its carrier), and check proves the policy whichever of them fail.
func groupMembers(cfg *config.Config) []string {
	var out []string
	for _, g := range cfg.Groups {
		for _, m := range g.Members() {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// resolver says which devices traffic sent through a name (an identity,
// or a group's active members, as compiled in this scenario) leaves by.
type resolver struct {
	ids    map[string]*compile.Identity
	groups map[string]*compile.GroupState
}

func newResolver(res *compile.Result) *resolver {
	r := &resolver{ids: map[string]*compile.Identity{}, groups: map[string]*compile.GroupState{}}
	for i := range res.Identities {
		r.ids[res.Identities[i].Name] = &res.Identities[i]
	}
	for i := range res.Groups {
		r.groups[res.Groups[i].Name] = &res.Groups[i]
	}
	return r
}

func (r *resolver) upIdentity(name string) (*compile.Identity, bool) {
	id := r.ids[name]
	return id, id != nil && !id.Down && id.Device != ""
}

// up is the identity traffic through name takes: name's own, or, for a
// group, its (first) active member, with the families of all of them.
func (r *resolver) up(name string) (*compile.Identity, bool) {
	g := r.groups[name]
	if g == nil {
		return r.upIdentity(name)
	}
	var first *compile.Identity
	has4, has6 := false, false
	for _, m := range g.Active {
		if id, ok := r.upIdentity(m); ok {
			if first == nil {
				first = id
			}
			has4, has6 = has4 || id.Has4, has6 || id.Has6
		}
	}
	if first == nil {
		return nil, false
	}
	c := *first
	c.Has4, c.Has6 = has4, has6
	return &c, true
}

// devs are the devices traffic through name may leave by: a balance
// group's every active member's.
func (r *resolver) devs(name string) []string {
	g := r.groups[name]
	if g == nil {
		if id, ok := r.upIdentity(name); ok {
			return []string{id.Device}
		}
		return nil
	}
	var out []string
	for _, m := range g.Active {
		if id, ok := r.upIdentity(m); ok && !slices.Contains(out, id.Device) {
			out = append(out, id.Device)
		}
	}
	return out
}

// fallbacks are what the groups that fell back to a clear member
// (`fallback: clear`) let out in clear in this scenario: their routes'
// destinations (everything for the gateway redirect), out of the clear
// member's device, as compile's kill switch allows it.
func fallbacks(cfg *config.Config, res *compile.Result, r *resolver) []Allowed {
	var out []Allowed
	for _, g := range res.Groups {
		if !g.Clear || len(g.Active) == 0 {
			continue
		}
		id, ok := r.upIdentity(g.Active[0])
		if !ok {
			continue
		}
		why := fmt.Sprintf("group %s fell back to clear via %s (fallback: clear)", g.Name, id.Name)
		if cfg.Redirect != nil && cfg.Redirect.Via == g.Name {
			out = append(out, Allowed{Why: why, Dev: id.Device})
			continue
		}
		var to []netip.Prefix
		for _, rt := range cfg.Routes {
			if rt.Via == g.Name {
				to = append(to, rt.To...)
			}
		}
		if len(to) > 0 {
			out = append(out, Allowed{Why: why, Match: Match{Dst: to}, Dev: id.Device})
		}
	}
	return out
}

// fallbackNotes say, for the scenarios where a group sends traffic in
// clear because the config allows it (`fallback: clear`), what may leave
// in clear and where: check reports it rather than calling it a leak.
func fallbackNotes(scs []Scenario) []string {
	var keys []string
	when := map[string][]string{}
	for _, sc := range scs {
		if sc.Policy == nil {
			continue
		}
		for _, a := range sc.Policy.Fallback {
			to := "everything the gateway redirect sends"
			if len(a.Match.Dst) > 0 {
				var ps []string
				for _, p := range a.Match.Dst {
					ps = append(ps, p.String())
				}
				to = strings.Join(ps, ", ")
			}
			k := fmt.Sprintf("%s: allowed in clear out of %s to %s", a.Why, a.Dev, to)
			if _, ok := when[k]; !ok {
				keys = append(keys, k)
			}
			when[k] = append(when[k], sc.Name)
		}
	}
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s, when: %s", k, strings.Join(when[k], "; ")))
	}
	return out
}
