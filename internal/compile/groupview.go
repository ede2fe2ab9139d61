package compile

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// Verdict is an identity's health as the health checks last judged it:
// the state, since when, and what made it change. It is recorded beside
// the VPN facts by the apply that acts on it, so that status and explain
// can say why a group's traffic moved.
type Verdict struct {
	Up bool `json:"up"`
	// Since is when the state last changed (zero if unknown).
	Since time.Time `json:"since,omitzero"`
	// Why says what made the change ("3 rounds in a row with fewer than
	// 1 of 2 targets answering", a passive signal, ...).
	Why string `json:"why,omitempty"`
}

// MemberHealth is one group member's health, as explain and status show
// it.
type MemberHealth struct {
	Name string `json:"name"`
	// State is "up", "down", "not judged yet" (the checks run but have
	// not finished a round, or no verdict was recorded) or "no health
	// check".
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	Why   string    `json:"why,omitempty"`
}

// GroupView is a group's compiled state with its members' recorded
// health: which member carries the traffic, and why.
type GroupView struct {
	Name string `json:"name"`
	// Kind is "failover" or "balance".
	Kind    string         `json:"kind"`
	Active  []string       `json:"active"`
	Clear   bool           `json:"clear,omitempty"`
	Why     string         `json:"why"`
	Members []MemberHealth `json:"members"`
	// Uses, in explain, says which part of the config sends the flow
	// through the group ("the gateway redirect", "routes[0] to
	// 198.51.100.0/24", "select[1]").
	Uses string `json:"uses,omitempty"`
}

// DescribeGroups joins each compiled group with its members' recorded
// verdicts (engine.Facts.Verdicts; nil when none were recorded).
func DescribeGroups(cfg *config.Config, groups []GroupState, verdicts map[string]Verdict) []GroupView {
	out := make([]GroupView, 0, len(groups))
	for _, g := range groups {
		v := GroupView{Name: g.Name, Kind: g.Kind, Active: g.Active, Clear: g.Clear, Why: g.Why}
		if v.Active == nil {
			v.Active = []string{}
		}
		var members []string
		if cg := cfg.Group(g.Name); cg != nil {
			members = cg.Members()
		}
		for _, m := range members {
			mh := MemberHealth{Name: m}
			id := cfg.Identity(m)
			vd, judged := verdicts[m]
			switch {
			case id != nil && id.Health == nil && !judged:
				mh.State = "no health check"
			case !judged:
				mh.State = "not judged yet"
			case vd.Up:
				mh.State, mh.Since, mh.Why = "up", vd.Since, vd.Why
			default:
				mh.State, mh.Since, mh.Why = "down", vd.Since, vd.Why
			}
			v.Members = append(v.Members, mh)
		}
		out = append(out, v)
	}
	return out
}

// Text is the view in one line: "failover group uplinks: isp2 carries
// the traffic (isp1 fails its health check); isp1 is down since
// 2026-12-02 15:02:03 UTC (3 rounds in a row with fewer than 1 of 2
// targets answering), isp2 is healthy (up since ...)".
func (v *GroupView) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s group %s: ", v.Kind, v.Name)
	switch len(v.Active) {
	case 0:
		b.WriteString("nothing carries the traffic")
	case 1:
		b.WriteString(v.Active[0] + " carries the traffic")
	default:
		b.WriteString(strings.Join(v.Active, " and ") + " carry the traffic")
	}
	if v.Clear {
		b.WriteString(" in clear (fallback: clear)")
	}
	fmt.Fprintf(&b, " (%s)", v.Why)
	var parts []string
	for _, m := range v.Members {
		parts = append(parts, m.text())
	}
	if len(parts) > 0 {
		b.WriteString("; ")
		b.WriteString(strings.Join(parts, ", "))
	}
	return b.String()
}

func (m *MemberHealth) text() string {
	since := ""
	if !m.Since.IsZero() {
		since = " since " + m.Since.UTC().Format("2006-01-02 15:04:05 MST")
	}
	why := ""
	if m.Why != "" {
		why = " (" + m.Why + ")"
	}
	switch m.State {
	case "up":
		if since != "" {
			return m.Name + " is healthy (up" + since + ")"
		}
		return m.Name + " is healthy"
	case "down":
		return m.Name + " is down" + since + why
	case "no health check":
		return m.Name + " has no health check"
	}
	return m.Name + " is not judged yet (counts as healthy)"
}

// GroupUse is a part of the config that sends traffic through a group:
// routes (in Table, to Dst) or a selector (its rules' priority).
type GroupUse struct {
	Group string
	// What names the part of the config in the user's words.
	What  string
	Table uint32
	Dst   []netip.Prefix
	// Rule is a selector's rule priority (0 for routes).
	Rule uint32
}

// GroupUses lists the routes, the gateway redirect and the selectors that
// go through a group.
func GroupUses(cfg *config.Config) []GroupUse {
	var out []GroupUse
	for i, r := range cfg.Routes {
		if r.Type != state.RouteUnicast || cfg.Group(r.Via) == nil {
			continue
		}
		what := fmt.Sprintf("routes[%d] via %s", i, r.Via)
		if r.File != "" {
			what = fmt.Sprintf("the routes of %s via %s", r.File, r.Via)
		}
		out = append(out, GroupUse{Group: r.Via, What: what, Table: r.Table, Dst: r.To})
	}
	if rd := cfg.Redirect; rd != nil && cfg.Group(rd.Via) != nil {
		out = append(out, GroupUse{Group: rd.Via, What: "the gateway redirect via " + rd.Via, Table: state.TableMain,
			Dst: append(halves(false), halves(true)...)})
	}
	for i, s := range cfg.Select {
		if cfg.Group(s.Via) != nil {
			out = append(out, GroupUse{Group: s.Via, What: fmt.Sprintf("select[%d] via %s", i, s.Via), Rule: cfg.SelectPriorityBase + uint32(i)})
		}
	}
	return out
}

// UsedGroup says which use sends a flow through a group: the flow's
// lookup matched the rule of priority rule (hasRule), or used the route
// to dst in table. ok is false when the flow goes through no group.
func UsedGroup(uses []GroupUse, hasRule bool, rule, table uint32, dst netip.Prefix) (GroupUse, bool) {
	for _, u := range uses {
		if u.Rule != 0 {
			if hasRule && rule == u.Rule {
				return u, true
			}
			continue
		}
		if !dst.IsValid() || table != u.Table {
			continue
		}
		for _, p := range u.Dst {
			if p == dst {
				return u, true
			}
		}
	}
	return GroupUse{}, false
}
