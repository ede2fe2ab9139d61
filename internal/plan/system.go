package plan

import (
	"errors"
	"fmt"
	"github.com/tunroute/tunroute/internal/netnsname"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// Namespace is one namespace's part of a system plan's input.
type Namespace struct {
	Netns string
	// Owned: a namespace tunroute creates for a domain (and deletes when
	// the domain leaves the config).
	Owned bool
	// Desired is what tunroute wants there; nil when the namespace is an
	// owned one the config no longer has (everything goes).
	Desired *state.State
	// Observed is what it holds now; nil when it does not exist yet.
	Observed *state.State
	// MovesIn are devices to move in from the top namespace; MovesOut
	// devices to move back to it (a domain that stays but no longer
	// lists them).
	MovesIn, MovesOut []string
	// Sysctls wanted in an owned namespace (forwarding).
	Sysctls map[string]string
}

// File is a file the system plan makes hold Want (nil: absent). Have is
// what it holds now (nil: absent); About says what it is for.
type File struct {
	Path        string
	Want, Have  []byte
	About       string
	Permissions uint32
}

// SystemPlan is every effect an apply has, in the order it has them.
type SystemPlan struct {
	// Top is the namespace tunroute works on (--netns, "" for its own).
	Top   string
	Steps []Step
	// Kept lists desired objects that exist already, made by someone
	// else, by namespace; tunroute leaves them alone.
	Kept []Kept
	// TakenBack lists, in plan words, the routes of other tools that
	// held the keys of tunroute's and are replaced (take_back_routes),
	// with who held them.
	TakenBack []string
}

// Kept is an object tunroute wanted and found already there, not its own.
type Kept struct {
	Netns, Object string
}

// DiffSystem plans every namespace (the first is the top one) and the
// files: namespaces are created, devices moved in, sysctls set, every
// namespace's additions made (top first), files written, then every
// namespace's removals (last first, in three rounds: objects, links, the
// firewall), devices moved back and namespaces deleted.
func DiffSystem(nss []Namespace, files ...File) (*SystemPlan, error) {
	if len(nss) == 0 {
		return nil, errors.New("no namespace to plan")
	}
	sp := &SystemPlan{Top: nss[0].Netns}
	plans := make([]*Plan, len(nss))
	var creates, moves, sysctls, deletes, movesOut []Step
	for i, ns := range nss {
		obs := ns.Observed
		if obs == nil {
			obs = &state.State{Version: state.Version, Namespace: ns.Netns}
		}
		if ns.Observed == nil && ns.Desired != nil {
			creates = append(creates, Step{Kind: StepCreateNamespace, Netns: ns.Netns})
		}
		for _, dev := range ns.MovesIn {
			moves = append(moves, Step{Kind: StepMoveLink, Dev: dev, Netns: sp.Top, To: ns.Netns})
		}
		if s := sysctlStep(ns, obs); s != nil {
			sysctls = append(sysctls, *s)
		}
		var err error
		if ns.Desired == nil {
			plans[i] = Down(obs)
			if ns.Owned {
				deletes = append(deletes, Step{Kind: StepDeleteNamespace, Netns: ns.Netns})
				for i := range obs.Links {
					l := &obs.Links[i]
					if !l.Loopback && !l.Owned() && l.Name != "lo" {
						movesOut = append(movesOut, Step{Kind: StepMoveLink, Dev: l.Name, Netns: ns.Netns, To: sp.Top})
					}
				}
			}
		} else if plans[i], err = Diff(ns.Desired, obs); err != nil {
			return nil, fmt.Errorf("%s: %w", netnsname.Word(ns.Netns), err)
		}
		for _, dev := range ns.MovesOut {
			movesOut = append(movesOut, Step{Kind: StepMoveLink, Dev: dev, Netns: ns.Netns, To: sp.Top})
		}
		plans[i].Namespace = ns.Netns
		for _, k := range plans[i].Kept {
			sp.Kept = append(sp.Kept, Kept{Netns: ns.Netns, Object: k})
		}
		for _, t := range plans[i].TakenBack {
			if ns.Netns != sp.Top {
				t += " in " + netnsname.Word(ns.Netns)
			}
			sp.TakenBack = append(sp.TakenBack, t)
		}
	}
	dropPeerDeletes(plans)

	sp.Steps = append(sp.Steps, creates...)
	sp.Steps = append(sp.Steps, moves...)
	sp.Steps = append(sp.Steps, sysctls...)
	for _, p := range plans {
		adds, _ := split(p.Ops)
		sp.addOps(p.Namespace, adds)
	}
	for _, f := range files {
		if !sameBytes(f.Have, f.Want) {
			sp.Steps = append(sp.Steps, Step{Kind: StepFile, Path: f.Path, Data: f.Want, Prev: f.Have, About: f.About, Permissions: f.Permissions})
		}
	}
	// Deleting a veth end deletes its peer and everything on it, so every
	// explicit removal comes before any link goes; the kill switch last.
	for round := 0; round < 3; round++ {
		for i := len(plans) - 1; i >= 0; i-- {
			_, dels := split(plans[i].Ops)
			sp.addOps(plans[i].Namespace, removalRound(dels, round))
		}
	}
	sp.Steps = append(sp.Steps, movesOut...)
	sp.Steps = append(sp.Steps, deletes...)
	return sp, nil
}

func (sp *SystemPlan) addOps(netns string, ops []state.Op) {
	if len(ops) > 0 {
		sp.Steps = append(sp.Steps, Step{Kind: StepOps, Netns: netns, Ops: ops})
	}
}

// sysctlStep sets the namespace's wanted sysctls that differ.
func sysctlStep(ns Namespace, obs *state.State) *Step {
	var s *Step
	for k, v := range ns.Sysctls {
		old, ok := obs.Sysctls[k]
		if ok && old == v {
			continue
		}
		if s == nil {
			s = &Step{Kind: StepSysctls, Netns: ns.Netns, Sysctls: map[string]string{}, PrevSysctls: map[string]string{}}
		}
		s.Sysctls[k] = v
		if ok {
			s.PrevSysctls[k] = old // a new namespace has none: nothing to restore
		}
	}
	return s
}

// dropPeerDeletes: deleting one end of a veth pair deletes the other, so
// when both ends are to be deleted only the first deletion (in execution
// order: removals run last namespace first) is kept.
func dropPeerDeletes(plans []*Plan) {
	gone := map[string]bool{} // "netns\x00dev" deleted by an earlier op
	for i := len(plans) - 1; i >= 0; i-- {
		p := plans[i]
		kept := p.Ops[:0]
		for _, op := range p.Ops {
			if op.Link != nil && op.Action == state.Delete {
				if gone[p.Namespace+"\x00"+op.Link.Name] {
					continue
				}
				if op.Link.Peer != "" {
					gone[op.Link.PeerNamespace+"\x00"+op.Link.Peer] = true
				}
			}
			kept = append(kept, op)
		}
		p.Ops = kept
	}
}

// Empty reports whether nothing would change anywhere.
func (sp *SystemPlan) Empty() bool { return len(sp.Steps) == 0 }

// Tally counts what the plan does.
func (sp *SystemPlan) Tally() Tally {
	var t Tally
	for _, s := range sp.Steps {
		s.count(&t)
	}
	return t
}

// Counts adds up the kernel objects added, changed and deleted.
func (sp *SystemPlan) Counts() (add, change, del int) {
	t := sp.Tally()
	return t.Added, t.Changed, t.Deleted
}

// Effects lists every effect of the plan in canonical form, in order.
func (sp *SystemPlan) Effects() []string {
	var out []string
	for _, s := range sp.Steps {
		out = append(out, s.Effects()...)
	}
	return out
}

// Lines lists the plan's steps as people read them, with the namespace
// each kernel change happens in.
func (sp *SystemPlan) Lines() []string {
	var out []string
	for _, s := range sp.Steps {
		prefix := ""
		if s.Kind == StepOps {
			prefix = netnsname.Word(s.Netns) + ": "
		}
		for _, l := range s.Lines() {
			out = append(out, prefix+strings.TrimSpace(l))
		}
	}
	return out
}

// Text renders the plan, Terraform style: a summary, then every step in
// the order apply takes them, kernel changes under the namespace they
// happen in.
func (sp *SystemPlan) Text() string {
	var b strings.Builder
	multi := sp.touchesOthers()
	where := netnsname.Word(sp.Top)
	switch {
	case sp.Empty() && multi:
		b.WriteString("No changes: every namespace already matches the config.\n")
	case sp.Empty():
		fmt.Fprintf(&b, "No changes: %s already matches the config.\n", where)
	case multi:
		fmt.Fprintf(&b, "Plan: %s.\n", sp.Tally().Pending())
	default:
		fmt.Fprintf(&b, "Plan for %s: %s.\n", where, sp.Tally().Pending())
	}
	current := sp.Top
	for _, s := range sp.Steps {
		if s.Kind == StepOps && multi && s.Netns != current {
			fmt.Fprintf(&b, "in %s:\n", netnsname.Word(s.Netns))
			current = s.Netns
		}
		indent := ""
		if s.Kind != StepOps {
			indent = "  "
		}
		for _, l := range s.Lines() {
			b.WriteString(indent + l + "\n")
		}
	}
	for _, k := range sp.Kept {
		where := ""
		if multi {
			where = " in " + netnsname.Word(k.Netns)
		}
		fmt.Fprintf(&b, "  = %s%s (already there, not tunroute's: left alone)\n", k.Object, where)
	}
	for _, t := range sp.TakenBack {
		fmt.Fprintf(&b, "  ! taking back %s\n", t)
	}
	return b.String()
}

// touchesOthers: the plan acts beyond the top namespace.
func (sp *SystemPlan) touchesOthers() bool {
	for _, s := range sp.Steps {
		if s.Netns != sp.Top || s.Kind == StepMoveLink {
			return true
		}
	}
	for _, k := range sp.Kept {
		if k.Netns != sp.Top {
			return true
		}
	}
	return false
}

// removalRound picks the removals of one round: 0 objects (rules,
// routes, addresses), 1 links, 2 the firewall.
func removalRound(dels []state.Op, round int) []state.Op {
	var out []state.Op
	for _, op := range dels {
		r := 0
		switch {
		case op.Link != nil:
			r = 1
		case op.Firewall != nil:
			r = 2
		}
		if r == round {
			out = append(out, op)
		}
	}
	return out
}

// split separates a plan's additions (and replacements) from its
// removals; Diff orders them that way.
func split(ops []state.Op) (adds, dels []state.Op) {
	for i, op := range ops {
		if op.Action == state.Delete {
			return ops[:i], ops[i:]
		}
	}
	return ops, nil
}

// ChangesNamespaces reports whether the plan creates or deletes a domain
// namespace (who keeps a list of them must list them again).
func (p *SystemPlan) ChangesNamespaces() bool {
	for _, st := range p.Steps {
		if st.Kind == StepCreateNamespace || st.Kind == StepDeleteNamespace {
			return true
		}
	}
	return false
}
