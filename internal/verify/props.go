package verify

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/config"
)

// Property is something that must hold for every packet in every
// scenario: check returns why the cell's packet breaks it in scenario i,
// or "".
type Property struct {
	Name string
	// Source is "built-in" or where an assertion stands in the config.
	Source  string
	matches []Match
	check   func(c *Cell, sc *Scenario, i int) string
}

// Violation is one counterexample: a packet, the scenario it breaks the
// property in, and what happens to it there.
type Violation struct {
	Property string `json:"property"`
	Source   string `json:"source"`
	Scenario string `json:"scenario"`
	Packet   Packet `json:"-"`
	Example  string `json:"packet"`
	Fate     string `json:"fate"`
	fate     Fate
	Why      string `json:"why"`
	Where    string `json:"class"`
	// Explain is the ready `tunroute explain` command (filled by the caller
	// who knows where the state comes from).
	Explain string `json:"explain,omitempty"`
	// Confirmed is set when the live kernel gave the same fate.
	Confirmed string `json:"confirmed,omitempty"`
}

// FateOf is the fate of the counterexample in its scenario.
func (v *Violation) FateOf() Fate { return v.fate }

// Result of one property.
type Result struct {
	Name       string       `json:"name"`
	Source     string       `json:"source"`
	Holds      bool         `json:"holds"`
	Violations []*Violation `json:"violations,omitempty"`
}

// Report is what Prove found.
type Report struct {
	Scenarios []string  `json:"scenarios"`
	Cells     int       `json:"classes_checked"`
	Results   []*Result `json:"properties"`
}

// OK reports whether every property holds.
func (r *Report) OK() bool {
	for _, p := range r.Results {
		if !p.Holds {
			return false
		}
	}
	return true
}

// Prove checks every property on every packet in every scenario. Each
// scenario's Policy must be set for the built-in properties.
func Prove(scenarios []Scenario, props []Property) (*Report, error) {
	var extra []Match
	for i := range scenarios {
		if p := scenarios[i].Policy; p != nil {
			extra = append(extra, p.Matches()...)
		}
	}
	for _, p := range props {
		extra = append(extra, p.matches...)
	}
	rep := &Report{}
	for _, sc := range scenarios {
		rep.Scenarios = append(rep.Scenarios, sc.Name)
	}
	best := make([][]*Violation, len(props))
	for i := range best {
		best[i] = make([]*Violation, len(scenarios))
	}
	err := Walk(scenarios, extra, func(c *Cell) {
		rep.Cells++
		for pi := range props {
			for si := range scenarios {
				why := props[pi].check(c, &scenarios[si], si)
				if why == "" {
					continue
				}
				if b := best[pi][si]; b != nil && !better(&c.Packet, &b.Packet) {
					continue
				}
				best[pi][si] = &Violation{Property: props[pi].Name, Source: props[pi].Source, Scenario: scenarios[si].Name,
					Packet: c.Packet, Example: c.Packet.String(), Fate: c.Fates[si].String(), fate: c.Fates[si], Why: why, Where: c.Describe()}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for pi, p := range props {
		r := &Result{Name: p.Name, Source: p.Source, Holds: true}
		for _, v := range best[pi] {
			if v != nil {
				r.Holds = false
				r.Violations = append(r.Violations, v)
			}
		}
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

// Builtins are the properties checked always.
func Builtins() []Property {
	return []Property{
		{Name: "nothing leaves in clear unless the policy allows it", Source: "built-in", check: checkClear},
		{Name: "what goes through a tunnel never falls back to clear when tunnels go down", Source: "built-in", check: checkFallback},
		{Name: "a tunnel's own transport never enters the tunnel", Source: "built-in", check: checkTransport},
		{Name: "DNS goes only to the declared resolvers", Source: "built-in", check: checkDNS},
		{Name: "traffic goes where the config sends it", Source: "built-in", check: checkIntent},
	}
}

func wire(c *Cell, i int) Packet {
	p := c.Packet
	if c.Srcs[i].IsValid() {
		p.Src = c.Srcs[i]
	}
	return p
}

func checkClear(c *Cell, sc *Scenario, i int) string {
	pol, f := sc.Policy, c.Fates[i]
	if pol == nil || !pol.KillSwitch || !f.Clear() || c.Packet.Forwarded() && !pol.GuardForward {
		return ""
	}
	wp := wire(c, i)
	for _, a := range pol.Clear {
		if a.Match.Contains(&wp) && (a.Dev == "" || a.Dev == f.Dev) {
			return ""
		}
	}
	return fmt.Sprintf("it leaves by %s in clear, and nothing in the kill switch's policy (allow, DHCP, neighbour discovery and MLD, the VPN servers, a BGP session, a selector, a group's fallback: clear) allows it", f.Dev)
}

func checkFallback(c *Cell, sc *Scenario, i int) string {
	if i == 0 || sc.Policy == nil || !sc.Policy.KillSwitch {
		return ""
	}
	if wp := wire(c, i); sc.Policy.infra(&wp) {
		return ""
	}
	f := c.Fates[i]
	for _, a := range sc.Policy.Fallback {
		if wp := wire(c, i); a.Match.Contains(&wp) && a.Dev == f.Dev {
			return "" // the config allows it: fallback: clear
		}
	}
	if up := c.Fates[0]; up.Kind == Out && up.Tunnel && c.Fates[i].Clear() {
		return fmt.Sprintf("with every tunnel up it goes through %s; here it leaves by %s in clear", up.Dev, c.Fates[i].Dev)
	}
	return ""
}

func checkTransport(c *Cell, sc *Scenario, i int) string {
	if sc.Policy == nil {
		return ""
	}
	f := c.Fates[i]
	for _, t := range sc.Policy.Transport {
		if f.Kind == Out && f.Dev == t.Dev && t.Match.Contains(&c.Packet) && !slices.Contains(t.TunnelAddrs, c.Packet.Src) {
			return fmt.Sprintf("%s's packets to its server go into %s, its own tunnel", t.VPN, t.Dev)
		}
	}
	return ""
}

func checkDNS(c *Cell, sc *Scenario, i int) string {
	pol, f := sc.Policy, c.Fates[i]
	if pol == nil || !pol.DNSGiven || f.Kind != Out {
		return ""
	}
	m := dnsMatch()
	if !m.Contains(&c.Packet) || slices.Contains(pol.DNS, c.Packet.Dst) {
		return ""
	}
	return fmt.Sprintf("a DNS query to %s, which is not among the declared resolvers, leaves by %s", c.Packet.Dst, f.Dev)
}

func checkIntent(c *Cell, sc *Scenario, i int) string {
	if sc.Policy == nil {
		return ""
	}
	f := c.Fates[i]
	if wp := wire(c, i); sc.Policy.infra(&wp) {
		return ""
	}
	for _, in := range sc.Policy.Intent {
		if !in.Match.Contains(&c.Packet) {
			continue
		}
		if f.Kind != Out || slices.Contains(in.Devs, f.Dev) {
			return ""
		}
		if len(in.Devs) == 0 {
			return fmt.Sprintf("the config drops it (%s), but it leaves by %s", in.Why, f.Dev)
		}
		return fmt.Sprintf("the config sends it through %s (%s), but it leaves by %s", strings.Join(in.Devs, ", "), in.Why, f.Dev)
	}
	return ""
}

// Assertions turns the config's assert list into properties.
func Assertions(cfg *config.Config) []Property {
	var out []Property
	for _, a := range cfg.Asserts {
		if a.FromDomain != "" {
			continue // between namespaces: see DomainAssertions
		}
		a := a
		m := Match{Src: a.From, Dst: a.To, SPorts: a.SPorts, DPorts: a.Ports, UID: a.UID, Cgroup: a.Cgroup}
		if a.Proto != 0 {
			m.Protos = []uint8{a.Proto}
		}
		if a.IIF != "" {
			m.IIF = []string{a.IIF}
		}
		m.Local, m.Forwarded = a.Traffic == "local", a.Traffic == "forwarded"
		pos := a.At("name")
		src := fmt.Sprintf("%s:%d:%d", pos.File, pos.Line, pos.Col)
		out = append(out, Property{Name: assertText(a), Source: src, matches: []Match{m},
			check: func(c *Cell, sc *Scenario, i int) string {
				if !m.Contains(&c.Packet) {
					return ""
				}
				if wp := wire(c, i); sc.Policy != nil && sc.Policy.infra(&wp) {
					return ""
				}
				return assertBroken(a, c.Fates[i], sc)
			}})
	}
	return out
}

func assertBroken(a *config.Assertion, f Fate, sc *Scenario) string {
	devs := func(names []string) []string {
		var out []string
		for _, n := range names {
			if d, ok := sc.Identities[n]; ok {
				out = append(out, d)
			} else {
				out = append(out, n)
			}
		}
		return out
	}
	switch {
	case len(a.NeverVia) > 0:
		if f.Kind == Out && slices.Contains(devs(a.NeverVia), f.Dev) {
			return "it leaves by " + f.Dev
		}
	case len(a.OnlyVia) > 0:
		if f.Kind == Out && !slices.Contains(devs(a.OnlyVia), f.Dev) {
			return "it leaves by " + f.Dev
		}
	case a.Via != "":
		dev := devs([]string{a.Via})[0]
		_, isID := sc.Identities[a.Via]
		if isID && !slices.Contains(sc.Up, a.Via) {
			if f.Kind == Out {
				return a.Via + " is down, and it leaves by " + f.Dev + " instead of being dropped"
			}
			return ""
		}
		if f.Kind != Out || f.Dev != dev {
			return "it is " + f.String()
		}
	case a.Never:
		if f.Kind == Out {
			return "it leaves by " + f.Dev
		}
	}
	return ""
}

func assertText(a *config.Assertion) string {
	var w []string
	if a.Name != "" && !strings.HasPrefix(a.Name, "assert[") {
		w = append(w, a.Name+":")
	}
	sel := func(k string, v any) { w = append(w, fmt.Sprintf("%s %v", k, v)) }
	if len(a.From) > 0 {
		sel("from", prefixList(a.From))
	}
	if len(a.To) > 0 {
		sel("to", prefixList(a.To))
	}
	if a.Proto != 0 {
		sel("proto", protoName(a.Proto))
	}
	if len(a.Ports) > 0 {
		sel("port", a.Ports)
	}
	if a.UID != nil {
		if a.UID.Start == a.UID.End {
			sel("uid", a.UID.Start)
		} else {
			sel("uid", fmt.Sprintf("%d-%d", a.UID.Start, a.UID.End))
		}
	}
	if a.Cgroup != "" {
		sel("cgroup", a.Cgroup)
	}
	if a.IIF != "" {
		sel("iif", a.IIF)
	}
	if a.FromDomain != "" {
		sel("from domain", a.FromDomain)
		sel("to domain", a.ToDomain)
	}
	switch {
	case len(a.NeverVia) > 0:
		sel("never via", strings.Join(a.NeverVia, ", "))
	case len(a.OnlyVia) > 0:
		sel("only via", strings.Join(a.OnlyVia, ", "))
	case a.Via != "":
		sel("via", a.Via)
	case a.Never:
		w = append(w, "never")
	}
	return strings.Join(w, " ")
}

func prefixList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}
