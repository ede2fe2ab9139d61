// Package plan compares a desired State with an observed one and orders the
// changes that make the namespace's tunroute-owned objects equal to the
// desired ones, then applies them all-or-nothing.
package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// Plan is the ordered list of changes, plus what was found already in
// place but not owned by tunroute.
type Plan struct {
	Namespace string
	Ops       []state.Op
	// Kept lists desired objects that exist already, made by someone else;
	// tunroute leaves them alone and will not remove them on down.
	Kept []string
	// TakenBack lists the routes of others that held the key of one of
	// tunroute's routes and are replaced by it (settings.take_back_routes),
	// each as "ROUTE (held by PROTO ROUTE)": who held it.
	TakenBack []string
}

// Empty reports whether there is nothing to do.
func (p *Plan) Empty() bool { return len(p.Ops) == 0 }

// ConflictError is a desired object whose kernel identity is taken by a
// different object tunroute does not own.
type ConflictError struct {
	Want, Have string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("cannot add %s: the kernel already holds %s, which is not tunroute's; remove it or change the config", e.Want, e.Have)
}

// Diff computes the plan that turns observed's owned objects into desired.
// desired must hold only owned objects (compile's output). It runs in time
// linear in the number of objects.
func Diff(desired, observed *state.State) (*Plan, error) {
	p := &Plan{Namespace: observed.Namespace}
	var b builder
	if err := b.addrs(p, desired, observed); err != nil {
		return nil, err
	}
	if err := b.routes(p, desired, observed); err != nil {
		return nil, err
	}
	b.rules(desired, observed)
	if err := b.links(p, desired, observed); err != nil {
		return nil, err
	}
	b.firewall(desired, observed)
	p.Ops = b.ordered()
	return p, nil
}

// Down is the plan that removes everything tunroute owns in observed.
func Down(observed *state.State) *Plan {
	p, _ := Diff(&state.State{Version: state.Version}, observed) // nothing desired: no conflict possible
	return p
}

// builder collects ops by phase; ordered() lays them out so that nothing
// is referenced before it exists and nothing is removed while in use.
// The firewall goes in first and comes out last: the kill switch must
// hold before routes change, so traffic meant for a tunnel never leaves in
// clear in between.
type builder struct {
	addFirewall                             []state.Op
	addLinks, addAddrs, addRoutes, addRules []state.Op
	delRules, delRoutes, delAddrs, delLinks []state.Op
	delFirewall                             []state.Op
}

func (b *builder) ordered() []state.Op {
	// Routes without a gateway first: a gateway route may need a
	// connected route of ours to resolve its gateway.
	sort.SliceStable(b.addRoutes, func(i, j int) bool {
		return !hasGateway(opRoute(&b.addRoutes[i])) && hasGateway(opRoute(&b.addRoutes[j]))
	})
	// and the reverse when deleting.
	sort.SliceStable(b.delRoutes, func(i, j int) bool {
		return hasGateway(opRoute(&b.delRoutes[i])) && !hasGateway(opRoute(&b.delRoutes[j]))
	})
	// IPv4 secondary addresses before the primaries: deleting a primary
	// takes the secondaries of its subnet with it (unless the interface
	// promotes them), and deleting those afterwards fails.
	sort.SliceStable(b.delAddrs, func(i, j int) bool {
		return secondary4(b.delAddrs[i].Addr) && !secondary4(b.delAddrs[j].Addr)
	})
	var ops []state.Op
	for _, phase := range [][]state.Op{b.addFirewall, b.addLinks, b.addAddrs, b.addRoutes, b.addRules,
		b.delRules, b.delRoutes, b.delAddrs, b.delLinks, b.delFirewall} {
		ops = append(ops, phase...)
	}
	return ops
}

func secondary4(a *state.Addr) bool { return !a.Is6() && a.Flags&state.AddrSecondary != 0 }

func hasGateway(r *state.Route) bool {
	for _, nh := range r.Nexthops {
		if nh.Gateway.IsValid() {
			return true
		}
	}
	return false
}

func (b *builder) addrs(p *Plan, desired, observed *state.State) error {
	have := make(map[state.AddrKey]*state.Addr, len(observed.Addrs))
	for i := range observed.Addrs {
		have[observed.Addrs[i].Key()] = &observed.Addrs[i]
	}
	want := make(map[state.AddrKey]bool, len(desired.Addrs))
	for i := range desired.Addrs {
		d := &desired.Addrs[i]
		want[d.Key()] = true
		o, ok := have[d.Key()]
		switch {
		case !ok:
			b.addAddrs = append(b.addAddrs, state.Op{Action: state.Add, Addr: d})
		case !o.Owned():
			p.Kept = append(p.Kept, "address "+o.String())
		case !d.Equal(o):
			b.addAddrs = append(b.addAddrs, state.Op{Action: state.Replace, Addr: d, PrevAddr: o})
		}
	}
	for i := range observed.Addrs {
		o := &observed.Addrs[i]
		if o.Owned() && !want[o.Key()] {
			b.delAddrs = append(b.delAddrs, state.Op{Action: state.Delete, Addr: o})
		}
	}
	return nil
}

func (b *builder) routes(p *Plan, desired, observed *state.State) error {
	want := make(map[state.RouteKey]*state.Route, len(desired.Routes))
	for i := range desired.Routes {
		want[desired.Routes[i].Key()] = &desired.Routes[i]
	}
	sets := newSetIndex(desired.RouteSets)
	found := make(map[state.RouteKey]bool, len(desired.Routes))
	check := func(o *state.Route, d *state.Route) error {
		switch {
		case o.Owned() && d.Equal(o):
		case o.Owned():
			b.addRoutes = append(b.addRoutes, state.Op{Action: state.Replace, Route: d, PrevRoute: o})
		default:
			mine := *d
			mine.Protocol = o.Protocol
			if !mine.Equal(o) && d.TakeBack {
				// TunnelVision: a DHCP client or another tool replaced
				// one of ours; the config says to take it back.
				b.addRoutes = append(b.addRoutes, state.Op{Action: state.Replace, Route: d, PrevRoute: o})
				p.TakenBack = append(p.TakenBack, fmt.Sprintf("route %s (held by proto %s: %s)", d.String(), o.Protocol, o.String()))
				return nil
			}
			if !mine.Equal(o) {
				return &ConflictError{Want: "route " + d.String(), Have: "route " + o.String()}
			}
			p.Kept = append(p.Kept, "route "+o.String())
		}
		return nil
	}
	pre := sets.lookupRoutes(observed.Routes)
	for i := range observed.Routes {
		o := &observed.Routes[i]
		k := o.Key()
		if d, wanted := want[k]; wanted {
			found[k] = true
			if err := check(o, d); err != nil {
				return err
			}
			continue
		}
		if d, wanted := sets.match(o, pre, i); wanted {
			if o.Owned() && d.Equal(o) {
				continue // the common case for a big list: nothing allocated
			}
			slow := new(state.Route) // only here, so d itself stays off the heap
			*slow = d
			if err := check(o, slow); err != nil {
				return err
			}
			continue
		}
		if o.Owned() {
			b.delRoutes = append(b.delRoutes, state.Op{Action: state.Delete, Route: o})
		}
	}
	for i := range observed.RouteSets {
		if err := b.observedSet(&observed.RouteSets[i], want, found, sets, check); err != nil {
			return err
		}
	}
	for i := range desired.Routes {
		d := &desired.Routes[i]
		if !found[d.Key()] {
			b.addRoutes = append(b.addRoutes, state.Op{Action: state.Add, Route: d})
		}
	}
	b.addRoutes = append(b.addRoutes, sets.missing()...)
	return nil
}

// rules diff as multisets: rules have no identity beyond their content.
func (b *builder) rules(desired, observed *state.State) {
	count := make(map[state.RuleKey]int, len(desired.Rules))
	for i := range desired.Rules {
		count[desired.Rules[i].Key()]++
	}
	for i := range observed.Rules {
		o := &observed.Rules[i]
		if !o.Owned() {
			continue
		}
		k := o.Key()
		if count[k] > 0 {
			count[k]--
			continue
		}
		b.delRules = append(b.delRules, state.Op{Action: state.Delete, Rule: o})
	}
	for i := range desired.Rules {
		d := &desired.Rules[i]
		k := d.Key()
		if count[k] > 0 {
			count[k]--
			b.addRules = append(b.addRules, state.Op{Action: state.Add, Rule: d})
		}
	}
}

func (b *builder) links(p *Plan, desired, observed *state.State) error {
	have := make(map[string]*state.Link, len(observed.Links))
	for i := range observed.Links {
		have[observed.Links[i].Name] = &observed.Links[i]
	}
	want := make(map[string]bool, len(desired.Links))
	for i := range desired.Links {
		d := &desired.Links[i]
		want[d.Name] = true
		o, ok := have[d.Name]
		if !ok {
			if !d.CreatedByPeer && !d.Userspace {
				b.addLinks = append(b.addLinks, state.Op{Action: state.Add, Link: d})
			}
			continue
		}
		op, err := deviceChange(p, d, o)
		if err != nil {
			return err
		}
		if op != nil {
			b.addLinks = append(b.addLinks, *op)
		}
	}
	for i := range observed.Links {
		o := &observed.Links[i]
		if o.Owned() && !want[o.Name] {
			b.delLinks = append(b.delLinks, state.Op{Action: state.Delete, Link: o})
		}
	}
	return nil
}

func (b *builder) firewall(desired, observed *state.State) {
	d, o := desired.Firewall, observed.Firewall
	switch {
	case d != nil && o == nil:
		b.addFirewall = append(b.addFirewall, state.Op{Action: state.Add, Firewall: d})
	case d != nil && !d.Equal(o):
		b.addFirewall = append(b.addFirewall, state.Op{Action: state.Replace, Firewall: d, PrevFirewall: o})
	case d == nil && o != nil:
		b.delFirewall = append(b.delFirewall, state.Op{Action: state.Delete, Firewall: o})
	}
}

// Counts returns how many objects the plan adds, changes and deletes.
func (p *Plan) Counts() (add, change, del int) { return countOps(p.Ops) }

// countOps counts the objects ops add, change and delete (a route set
// counts its routes).
func countOps(ops []state.Op) (add, change, del int) {
	for _, op := range ops {
		n := 1
		if op.RouteSet != nil {
			n = len(op.RouteSet.Dsts)
		}
		switch op.Action {
		case state.Add:
			add += n
		case state.Replace:
			change += n
		case state.Delete:
			del += n
		}
	}
	return
}

// Text renders the plan for people, Terraform style.
func (p *Plan) Text() string {
	var b strings.Builder
	where := "the host namespace"
	if p.Namespace != "" {
		where = "namespace " + p.Namespace
	}
	add, change, del := p.Counts()
	if p.Empty() {
		fmt.Fprintf(&b, "No changes: %s already matches the config.\n", where)
	} else {
		fmt.Fprintf(&b, "Plan for %s: %d to add, %d to change, %d to delete.\n", where, add, change, del)
	}
	for _, op := range p.Ops {
		if op.Firewall != nil {
			writeFirewallOp(&b, op)
			continue
		}
		switch op.Action {
		case state.Add:
			fmt.Fprintf(&b, "  + %s %s\n", op.Object(), objectString(op))
		case state.Delete:
			fmt.Fprintf(&b, "  - %s %s\n", op.Object(), objectString(op))
		case state.Replace:
			prev := op.Inverse()
			fmt.Fprintf(&b, "  ~ %s %s\n      (was %s)\n", op.Object(), objectString(op), objectString(prev))
		}
	}
	for _, k := range p.Kept {
		fmt.Fprintf(&b, "  = %s (already there, not tunroute's: left alone)\n", k)
	}
	return b.String()
}

func objectString(op state.Op) string {
	s := op.String()
	return s[len(op.Action.String())+len(op.Object())+2:]
}

// writeFirewallOp shows a firewall change rule by rule: the whole table
// when it is added, the rules that differ when it is replaced.
func writeFirewallOp(b *strings.Builder, op state.Op) {
	switch op.Action {
	case state.Add:
		fmt.Fprintf(b, "  + firewall %s\n", op.Firewall.Summary())
		for _, l := range op.Firewall.Lines() {
			fmt.Fprintf(b, "      %s\n", l)
		}
	case state.Delete:
		fmt.Fprintf(b, "  - firewall %s\n", op.Firewall.Summary())
	case state.Replace:
		fmt.Fprintf(b, "  ~ firewall %s\n", op.Firewall.Summary())
		old := map[string]int{}
		for _, l := range op.PrevFirewall.Lines() {
			old[l]++
		}
		for _, l := range op.Firewall.Lines() {
			if old[l] > 0 {
				old[l]--
				continue
			}
			fmt.Fprintf(b, "      + %s\n", strings.TrimSpace(l))
		}
		for _, l := range op.PrevFirewall.Lines() {
			if old[l] > 0 {
				old[l]--
				fmt.Fprintf(b, "      - %s\n", strings.TrimSpace(l))
			}
		}
	}
}
