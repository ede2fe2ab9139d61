package daemon

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// Kernel tables shared with everyone.
const (
	tableDefault = 253
	tableMain    = 254
	tableLocal   = 255
)

// interest decides which kernel events can matter to the config, so a
// busy routing table (a BGP feed, DHCP renewals of other devices, a
// million foreign routes) does not make the daemon re-read the system.
// A route event matters when the route is tunroute's, sits in a table
// tunroute fills, has the key of a route tunroute wants in a shared
// table, or is a default route (the uplink gateway that server host
// routes and `gateway: auto` follow). Links, addresses and rules always
// matter; nftables events matter for tunroute's table only. Routes,
// rules and nexthops tunroute adds itself (a repair, a hook's apply) do
// not: the plan that added them is applied already.
type interest struct {
	known  bool
	tables map[string]map[uint32]bool
	keys   map[string]map[routeKey]bool
	// rules are the (family, preference) pairs of the rules the config
	// wants, per namespace.
	rules map[string]map[ruleKey]bool
}

type ruleKey struct {
	family   uint8
	priority uint32
}

type routeKey struct {
	table uint32
	dst   netip.Prefix
}

// update learns what the compiled config wants in every namespace.
func (in *interest) update(sys *compile.System) {
	if sys == nil {
		return
	}
	in.known = true
	in.tables = map[string]map[uint32]bool{}
	in.keys = map[string]map[routeKey]bool{}
	in.rules = map[string]map[ruleKey]bool{}
	for _, d := range sys.Domains {
		tables, keys, rules := map[uint32]bool{}, map[routeKey]bool{}, map[ruleKey]bool{}
		st := d.Result.State
		for _, r := range st.Rules {
			rules[ruleKey{familyOf(r.Family), r.Priority}] = true
		}
		in.rules[d.Netns] = rules
		for _, r := range st.Routes {
			if shared(r.Table) {
				keys[routeKey{r.Table, r.Dst}] = true
			} else {
				tables[r.Table] = true
			}
		}
		for _, rs := range st.RouteSets {
			tables[rs.Template.Table] = true
		}
		in.tables[d.Netns], in.keys[d.Netns] = tables, keys
	}
}

func shared(t uint32) bool { return t == tableMain || t == tableLocal || t == tableDefault }

// wants says whether an event can change what the plan would be.
func (in *interest) wants(ev kernel.WatchEvent) bool {
	switch ev.Kind {
	case kernel.WatchRoute:
		if ev.Protocol == state.Proto && !ev.Deleted {
			// tunroute's own addition (a repair, a hook) is where the
			// config wants a route; one elsewhere is another program's
			// claiming tunroute's protocol, and the plan removes it.
			return !in.known || !(in.tables[ev.Netns][ev.Table] || in.keys[ev.Netns][routeKey{ev.Table, ev.Dst}])
		}
		if !in.known || ev.Protocol == state.Proto || ev.Dst.Bits() == 0 {
			return true
		}
		if in.tables[ev.Netns][ev.Table] {
			return true
		}
		return in.keys[ev.Netns][routeKey{ev.Table, ev.Dst}]
	case kernel.WatchFirewall:
		return ev.FirewallTable == "" || ev.FirewallTable == state.FirewallTable
	case kernel.WatchRule:
		if ev.Protocol == state.Proto && !ev.Deleted {
			return !in.known || !in.rules[ev.Netns][ruleKey{ev.Family, ev.Priority}]
		}
		return true
	case kernel.WatchNexthop:
		return ev.Protocol == state.Proto && ev.Deleted
	}
	return true
}

// familyOf is the address family (AF_INET, AF_INET6) of a state's 4 or 6.
func familyOf(v int) uint8 {
	if v == 6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}
