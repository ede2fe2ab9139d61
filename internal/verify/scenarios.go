package verify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// Input is a config and the namespace it is applied to.
type Input struct {
	Config *config.Config
	// Observed is the namespace as it is (live or a snapshot).
	Observed *state.State
	// Facts are what the VPN hooks reported, by VPN name.
	Facts map[string]*facts.VPN
}

// MaxTunnels bounds the combinations checked (2^MaxTunnels scenarios).
const MaxTunnels = 10

// ScenariosOf compiles the config in every combination of its VPNs up
// and down and of its groups' members passing or failing their health
// checks, the first with every VPN up and every member healthy. A VPN the
// hooks never reported cannot be brought up (its device and addresses
// are unknown): it is down in every scenario, and a note says so. A VPN
// that is down has lost its tunnel device too: that is when a leak would
// happen. A group member that fails its health check is passed over by
// its groups as the prober's verdict would make it.
func ScenariosOf(in Input) ([]Scenario, []string, error) {
	var names, notes []string
	for _, v := range in.Config.VPNs {
		if f := in.Facts[v.Name]; f != nil && f.Device != "" {
			names = append(names, v.Name)
		} else {
			notes = append(notes, fmt.Sprintf("vpn %s has never reported its facts (its hook has not run): it is checked down only", v.Name))
		}
	}
	if len(names) > MaxTunnels {
		notes = append(notes, fmt.Sprintf("%d VPNs: only the first %d are combined up and down; the others stay as they are", len(names), MaxTunnels))
		names = names[:MaxTunnels]
	}
	members := groupMembers(in.Config)
	if room := MaxTunnels - len(names); len(members) > room {
		notes = append(notes, fmt.Sprintf("%d group members: only the first %d are combined healthy and failing; the others stay healthy", len(members), room))
		members = members[:room]
	}
	var out []Scenario
	for mask := (1 << len(names)) - 1; mask >= 0; mask-- {
		fs := map[string]*facts.VPN{}
		for k, v := range in.Facts {
			fs[k] = v
		}
		obs := in.Observed
		var label []string
		current := true
		for i, n := range names {
			f := *in.Facts[n]
			if (mask&(1<<i) != 0) != !in.Facts[n].Down {
				current = false
			}
			if mask&(1<<i) != 0 {
				f.Down = false
				label = append(label, n+" up")
			} else {
				f.Down = true
				label = append(label, n+" down")
				obs = withoutLink(obs, f.Device)
			}
			fs[n] = &f
		}
		for hmask := (1 << len(members)) - 1; hmask >= 0; hmask-- {
			health := compile.Health{}
			hlabel := slices.Clone(label)
			redundant := false
			for i, m := range members {
				if hmask&(1<<i) != 0 {
					continue
				}
				if id := in.Config.Identity(m); id != nil && id.VPN != "" && (fs[id.VPN] == nil || fs[id.VPN].Down) {
					redundant = true // down already: failing adds nothing
					break
				}
				health[m] = false
				hlabel = append(hlabel, m+" failing its health check")
			}
			if redundant {
				continue
			}
			sc, err := scenarioOf(in.Config, obs, fs, health)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", strings.Join(hlabel, ", "), err)
			}
			sc.Name, sc.Current = strings.Join(hlabel, ", "), current && len(health) == 0
			if sc.Name == "" {
				sc.Name = "as configured"
			}
			out = append(out, sc)
		}
	}
	return out, append(notes, fallbackNotes(out)...), nil
}

func scenarioOf(cfg *config.Config, obs *state.State, fs map[string]*facts.VPN, health compile.Health) (Scenario, error) {
	res, err := compile.CompileHealth(cfg, obs, fs, health)
	if err != nil {
		return Scenario{}, err
	}
	st := consistent(plan.Preview(res.State, obs))
	pol := PolicyOf(cfg, res, st, fs)
	sc := Scenario{State: st, Tunnels: TunnelDevices(cfg, res), Policy: &pol, Identities: map[string]string{}}
	for _, id := range res.Identities {
		sc.Identities[id.Name] = id.Device
		if !id.Down && id.Device != "" {
			sc.Up = append(sc.Up, id.Name)
		}
	}
	return sc, nil
}

// withoutLink is s without a device and what hangs on it: a tunnel whose
// daemon died.
func withoutLink(s *state.State, dev string) *state.State {
	if !slices.ContainsFunc(s.Links, func(l state.Link) bool { return l.Name == dev }) {
		return s
	}
	c := *s
	c.Links = slices.DeleteFunc(slices.Clone(s.Links), func(l state.Link) bool { return l.Name == dev })
	c.Addrs = slices.DeleteFunc(slices.Clone(s.Addrs), func(a state.Addr) bool { return a.Dev == dev })
	c.Routes = slices.DeleteFunc(slices.Clone(s.Routes), func(r state.Route) bool {
		return slices.ContainsFunc(r.Nexthops, func(n state.Nexthop) bool { return n.Dev == dev })
	})
	return &c
}

// Check proves the config's built-in properties and assertions in every
// scenario.
func Check(in Input) (*Report, []string, error) {
	scs, notes, err := ScenariosOf(in)
	if err != nil {
		return nil, nil, err
	}
	props := append(Builtins(), Assertions(in.Config)...)
	rep, err := Prove(scs, props)
	if err != nil {
		return nil, nil, err
	}
	dom, err := ProveDomains(in.Config, in.Observed, in.Facts)
	if err != nil {
		return nil, nil, err
	}
	rep.Results = append(rep.Results, dom...)
	inDomains, err := ProveDomainBuiltins(in.Config, in.Observed, in.Facts)
	if err != nil {
		return nil, nil, err
	}
	rep.Results = append(rep.Results, inDomains...)
	return rep, notes, nil
}

// Gate is what `apply --check` runs before changing anything: nil when
// every property holds in every scenario, else an error that names the
// first broken property and its counterexample.
func Gate(in Input) error {
	rep, _, err := Check(in)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if rep.OK() {
		return nil
	}
	var lines []string
	n := 0
	for _, r := range rep.Results {
		if r.Holds {
			continue
		}
		n++
		v := r.Violations[0]
		lines = append(lines, fmt.Sprintf("%s (%s): %s: %s; %s", r.Name, r.Source, v.Scenario, v.Example, v.Why))
	}
	return &GateError{Broken: n, Lines: lines}
}

// GateError is a refused apply --check.
type GateError struct {
	Broken int
	Lines  []string
}

func (e *GateError) Error() string {
	return fmt.Sprintf("check: %d propert%s broken, nothing applied:\n  %s", e.Broken, map[bool]string{true: "y", false: "ies"}[e.Broken == 1],
		strings.Join(e.Lines, "\n  "))
}

// consistent drops what hangs on a device the state does not have (the
// kernel's link-local address of a tunroute link the preview replaced).
func consistent(st *state.State) *state.State {
	has := map[string]bool{}
	for _, l := range st.Links {
		has[l.Name] = true
	}
	addrs := st.Addrs[:0:0]
	for _, a := range st.Addrs {
		if has[a.Dev] {
			addrs = append(addrs, a)
		}
	}
	routes := st.Routes[:0:0]
	for _, r := range st.Routes {
		if len(r.Nexthops) == 0 || has[r.Nexthops[0].Dev] || r.Nexthops[0].Dev == "" {
			routes = append(routes, r)
		}
	}
	st.Addrs, st.Routes = addrs, routes
	return st
}
