package verify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// Routing domains: a packet a domain sends to another domain's addresses
// crosses namespaces through the pipes (veth pairs). ProveDomains
// follows it hop by hop: its fate in one namespace, out of a pipe end,
// becomes a forwarded packet in the namespace of the other end, until it
// is delivered, dropped, refused or leaves by a device that is no pipe.
// The packet space is cut along every namespace's rules, routes and
// firewall at once, so each class crosses the same way as a whole. The
// header does not change on the way (masquerade and netmap are not
// followed), and a domain's namespace is taken as tunroute would make it.

// maxHops bounds a packet's path through the domains.
const maxHops = 16

type nsEnd struct{ domain, dev string }

// ProveDomains checks the assertions between domains. observed is the
// top namespace (tunroute's own, "host" in the config); a domain's
// namespace is taken as tunroute would create it.
func ProveDomains(cfg *config.Config, observed *state.State, fs map[string]*facts.VPN) ([]*Result, error) {
	var asserts []*config.Assertion
	for _, a := range cfg.Asserts {
		if a.FromDomain != "" {
			asserts = append(asserts, a)
		}
	}
	if len(asserts) == 0 {
		return nil, nil
	}
	_, states, order, err := domainStates(cfg, observed, fs, nil)
	if err != nil {
		return nil, err
	}

	peers := map[nsEnd]nsEnd{}
	for _, p := range cfg.Pipes {
		a, b := nsEnd{p.A.Domain, p.A.Device}, nsEnd{p.B.Domain, p.B.Device}
		peers[a], peers[b] = b, a
	}
	evs := map[string]*evaluator{}
	var all []*state.State
	for _, n := range order {
		ev, err := newEvaluator(states[n], nil)
		if err != nil {
			return nil, fmt.Errorf("domain %s: %w", n, err)
		}
		evs[n] = ev
		all = append(all, states[n])
	}
	var results []*Result
	for _, a := range asserts {
		to := states[a.ToDomain]
		var dsts []netip.Prefix
		for _, ad := range to.Addrs {
			if !ad.Prefix.Addr().IsLoopback() {
				dsts = append(dsts, netip.PrefixFrom(ad.Prefix.Addr(), ad.Prefix.Addr().BitLen()))
			}
		}
		m := Match{Local: true, Dst: dsts, Src: a.From, UID: a.UID, Cgroup: a.Cgroup}
		if len(a.To) > 0 {
			m.Dst = a.To
		}
		if a.Proto != 0 {
			m.Protos = []uint8{a.Proto}
		}
		m.DPorts, m.SPorts = a.Ports, a.SPorts
		pos := a.At("from_domain")
		res := &Result{Name: assertText(a), Source: fmt.Sprintf("%s:%d:%d", pos.File, pos.Line, pos.Col), Holds: true}
		var best *Violation
		for _, fam := range []int{4, 6} {
			sp, err := buildSpace(fam, all, []Match{m})
			if err != nil {
				return nil, err
			}
			for gi := range sp.groups {
				cubes := sp.cubesFor(gi)
				for ci := range cubes {
					p := sp.packet(&cubes[ci])
					p.Dst = sp.groups[gi].rep(fam)
					if !m.Contains(&p) {
						continue
					}
					path, reached := follow(evs, peers, a.FromDomain, a.ToDomain, p)
					if !reached || best != nil && !better(&p, &best.Packet) {
						continue
					}
					c := Cell{Family: fam, Packet: p, sp: sp, cube: &cubes[ci], group: &sp.groups[gi]}
					best = &Violation{Property: res.Name, Source: res.Source, Scenario: "domains", Packet: p, Example: p.String(),
						Fate: "reaches " + a.ToDomain, fate: Fate{Kind: Local, Dev: "lo"}, Why: "it goes " + strings.Join(path, ", then "),
						Where: c.Describe(), Explain: "tunroute explain --netns " + states[a.FromDomain].Namespace + " " + strings.Join(p.ExplainArgs(), " ")}
				}
			}
		}
		if best != nil {
			res.Holds = false
			res.Violations = []*Violation{best}
		}
		results = append(results, res)
	}
	return results, nil
}

// follow walks p from domain from; reached is set when it is delivered
// in domain to. path tells each namespace's decision.
func follow(evs map[string]*evaluator, peers map[nsEnd]nsEnd, from, to string, p Packet) (path []string, reached bool) {
	dom := from
	for hop := 0; hop < maxHops; hop++ {
		ev := evs[dom]
		if ev == nil {
			return path, false
		}
		f, src := ev.fateSrc(&p)
		path = append(path, fmt.Sprintf("in %s: %s", dom, f))
		switch {
		case f.Kind == Local:
			return path, dom == to
		case f.Kind != Out:
			return path, false
		}
		next, ok := peers[nsEnd{dom, f.Dev}]
		if !ok {
			return path, false
		}
		if src.IsValid() {
			p.Src = src
		}
		p.IIF, p.Mark, p.UID, p.Cgroup = next.dev, 0, 0, ""
		dom = next.domain
	}
	return path, false
}

// domainStates compiles the config for every namespace it covers and
// returns each one's state as tunroute would leave it, by domain name
// ("host" for the top), in config order.
func domainStates(cfg *config.Config, observed *state.State, fs map[string]*facts.VPN, health compile.Health) (*compile.System, map[string]*state.State, []string, error) {
	sys, err := compile.CompileSystemHealth(cfg, observed.Namespace, compile.Observed{observed.Namespace: observed}, fs, health)
	if err != nil {
		return nil, nil, nil, err
	}
	states := map[string]*state.State{}
	var order []string
	for _, d := range sys.Domains {
		obs := observed
		for _, dd := range sys.Domains {
			for _, dev := range dd.Moves {
				obs = withoutLink(obs, dev) // it goes into that domain
			}
		}
		if d.Name != config.HostDomain {
			obs = &state.State{Version: state.Version, Namespace: d.Netns,
				Links: []state.Link{{Index: 1, Name: "lo", Up: true, Carrier: true, Loopback: true}}}
			for _, dev := range d.Moves {
				carry(obs, observed, dev)
			}
		}
		st := consistent(plan.Preview(d.Result.State, obs))
		if len(d.Sysctls) > 0 {
			m := map[string]string{}
			for k, v := range st.Sysctls {
				m[k] = v
			}
			for k, v := range d.Sysctls {
				m[k] = v
			}
			st.Sysctls = m
		}
		states[d.Name] = st
		order = append(order, d.Name)
	}
	return sys, states, order, nil
}

// ProveDomainBuiltins proves the built-in properties inside each routing
// domain's namespace, with the domain's own policy (its kill switch,
// redirect, selectors...) and the VPN facts as they are.
func ProveDomainBuiltins(cfg *config.Config, observed *state.State, fs map[string]*facts.VPN) ([]*Result, error) {
	if len(cfg.Domains) == 0 {
		return nil, nil
	}
	sys, states, _, err := domainStates(cfg, observed, fs, nil)
	if err != nil {
		return nil, err
	}
	var out []*Result
	for _, d := range sys.Domains {
		dm := cfg.Domain(d.Name)
		if dm == nil || dm.Config == nil {
			continue
		}
		scs := []Scenario{domainScenario(dm.Config, d, states[d.Name], fs, "domain "+d.Name)}
		// The domain's groups, whichever members fail their health
		// checks (the verdicts go by DOMAIN/IDENTITY).
		members := groupMembers(dm.Config)
		if len(members) > MaxTunnels {
			members = members[:MaxTunnels]
		}
		for hmask := (1 << len(members)) - 2; hmask >= 0; hmask-- {
			health := compile.Health{}
			var label []string
			for i, m := range members {
				if hmask&(1<<i) == 0 {
					health[d.Name+"/"+m] = false
					label = append(label, m+" failing its health check")
				}
			}
			hsys, hstates, _, err := domainStates(cfg, observed, fs, health)
			if err != nil {
				return nil, fmt.Errorf("domain %s, %s: %w", d.Name, strings.Join(label, ", "), err)
			}
			for _, hd := range hsys.Domains {
				if hd.Name == d.Name {
					scs = append(scs, domainScenario(dm.Config, hd, hstates[d.Name], fs, "domain "+d.Name+", "+strings.Join(label, ", ")))
				}
			}
		}
		rep, err := Prove(scs, Builtins())
		if err != nil {
			return nil, fmt.Errorf("domain %s: %w", d.Name, err)
		}
		for _, r := range rep.Results {
			r.Name += " (in domain " + d.Name + ")"
			for _, v := range r.Violations {
				v.Property = r.Name
				v.Explain = "tunroute explain --netns " + d.Netns + " " + strings.Join(v.Packet.ExplainArgs(), " ")
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// domainScenario is one compiled domain as a scenario of its own.
func domainScenario(cfg *config.Config, d compile.Domain, st *state.State, fs map[string]*facts.VPN, name string) Scenario {
	pol := PolicyOf(cfg, d.Result, st, fs)
	sc := Scenario{Name: name, State: st, Tunnels: TunnelDevices(cfg, d.Result), Policy: &pol,
		Identities: map[string]string{}, Current: true}
	for _, id := range d.Result.Identities {
		sc.Identities[id.Name] = id.Device
		if !id.Down && id.Device != "" {
			sc.Up = append(sc.Up, id.Name)
		}
	}
	return sc
}

// carry copies a device, its addresses and the routes through it from
// one state into another (an interface moved into a domain).
func carry(to, from *state.State, dev string) {
	for _, l := range from.Links {
		if l.Name == dev {
			l.Index = len(to.Links) + 1
			to.Links = append(to.Links, l)
		}
	}
	for _, a := range from.Addrs {
		if a.Dev == dev {
			to.Addrs = append(to.Addrs, a)
		}
	}
	for _, r := range from.Routes {
		if len(r.Nexthops) > 0 && r.Nexthops[0].Dev == dev {
			to.Routes = append(to.Routes, r)
		}
	}
}
