package daemon

import (
	"strings"

	"github.com/tunroute/tunroute/internal/netnsname"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// object is one thing a repair puts back: what the fight accounting and
// the repair counts are kept by.
type object struct {
	// Key names the object in its namespace, e.g. "initial namespace:
	// rule pref 100 from all lookup 100".
	Key string
	// Kind is route, rule, address, link, firewall, routes (a route
	// list), namespace, move, sysctls or file.
	Kind string
	// Competitor is the protocol of the object tunroute's replaces, when
	// it is someone else's (a route of networkd's "static", "dhcp").
	Competitor string
}

// objectsOf lists what a plan changes, one object per op or step.
func objectsOf(p *plan.SystemPlan) []object {
	var out []object
	for _, s := range p.Steps {
		where := netnsname.Word(s.Netns) + ": "
		switch s.Kind {
		case plan.StepOps:
			for _, op := range s.Ops {
				_, obj, _ := strings.Cut(op.String(), " ")
				o := object{Key: where + obj, Kind: op.Object()}
				if op.Action == state.Replace && op.PrevRoute != nil && op.PrevRoute.Protocol != state.Proto {
					o.Competitor = op.PrevRoute.Protocol.String()
				}
				out = append(out, o)
			}
		default:
			out = append(out, object{Key: where + strings.TrimSpace(strings.Join(s.Lines(), "; ")), Kind: stepKind(s.Kind)})
		}
	}
	return out
}

func stepKind(k plan.StepKind) string {
	switch k {
	case plan.StepCreateNamespace, plan.StepDeleteNamespace:
		return "namespace"
	case plan.StepMoveLink:
		return "move"
	case plan.StepSysctls:
		return "sysctls"
	case plan.StepFile:
		return "file"
	}
	return "other"
}

// fixFor is the advice a fight warning gives for an object kind: the
// usual culprits and how to make them leave tunroute's objects alone.
func fixFor(kind, competitor string) string {
	switch kind {
	case "rule":
		return "if systemd-networkd runs here, it deletes rules it did not make on every reconfigure: add a drop-in /etc/systemd/networkd.conf.d/tunroute.conf with [Network] ManageForeignRoutingPolicyRules=no"
	case "route", "routes":
		switch competitor {
		case "dhcp":
			return "a DHCP client installs a route with the same key: stop it from installing that route (networkd: [DHCPv4] UseRoutes=no or RouteTable=; NetworkManager: ipv4.never-default / ignore-auto-routes)"
		case "ra":
			return "router advertisements install a route with the same key: set accept_ra_defrtr=0 on that device, or let tunroute use another metric"
		}
		return "if systemd-networkd runs here, it deletes routes it did not make on every reconfigure: add a drop-in /etc/systemd/networkd.conf.d/tunroute.conf with [Network] ManageForeignRoutes=no"
	case "firewall":
		return "another program flushes or replaces the nftables ruleset (nft flush ruleset, firewalld, an iptables-restore): make it flush only its own tables and leave table inet tunroute alone"
	case "address", "link":
		return "a network manager manages this device: mark it unmanaged (networkd: Unmanaged=yes; NetworkManager: unmanaged-devices)"
	}
	return "find the program that changes it (ip monitor, nft monitor)"
}
