package kernel

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// Observe reads the complete routing state of the namespace: links,
// addresses, routes of all tables, rules, sysctls and IPv6 address labels,
// both families, each in the kernel's order, and tunroute's nftables table
// (nft_observe.go). ObserveWith with a RouteScope reads tunroute's routes
// and only the routes of others that a plan can depend on.
func (h *Handle) Observe() (*state.State, error) {
	return h.ObserveWith(ObserveOptions{})
}

func (h *Handle) observe(c *conn, o ObserveOptions) (*state.State, error) {
	s := &state.State{Version: state.Version, Namespace: h.name}
	links, err := c.dumpLinks()
	if err != nil {
		return nil, fmt.Errorf("links: %w", err)
	}
	c.resolveLinks(links)
	d := newDevNames(links)
	s.Links = make([]state.Link, len(links))
	devs := make([]string, len(links))
	for i := range links {
		s.Links[i] = links[i].Link
		devs[i] = links[i].Name
	}
	h.devs = nil // Execute refreshes its cache from the kernel

	byIndex := map[int][]state.Addr{}
	for _, af := range []uint8{unix.AF_INET, unix.AF_INET6} {
		addrs, err := c.dumpAddrs(af, d.name)
		if err != nil {
			return nil, fmt.Errorf("addresses: %w", err)
		}
		for _, a := range addrs {
			byIndex[a.Index] = append(byIndex[a.Index], a)
		}
	}
	for _, l := range links {
		s.Addrs = append(s.Addrs, byIndex[l.Index]...)
	}

	nhs, err := c.ownNexthops()
	if err != nil {
		return nil, fmt.Errorf("nexthop objects: %w", err)
	}
	for _, af := range []uint8{unix.AF_INET, unix.AF_INET6} {
		rules, err := c.dumpRules(af)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		if af == unix.AF_INET && !defaultRules4(rules) {
			// A rule list like the default one says nothing: a rule
			// added and deleted again leaves it so, and the kernel
			// still no longer merges table local into main.
			modified := true
			s.Hidden.RulesModified = &modified
		}
		s.Rules = append(s.Rules, rules...)
	}
	scope := o.Routes
	if scope != nil {
		scope = scope.Resolve(s.Rules, s.Addrs) // rules first: they say which tables a lookup reaches
	}
	var groups routeGroups
	own := RouteFilter{}
	if scope != nil {
		own.Protocol = state.Proto
	}
	for _, af := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if scope != nil && scope.Family != 0 && scope.Family != af {
			continue
		}
		if o.leftOut != nil && scope != nil {
			left := &o.leftOut.V4
			if af == unix.AF_INET6 {
				left = &o.leftOut.V6
			}
			if s.Routes, *left, err = h.readTablesLeavingBig(s.Routes, af, scope.Tables, scope.whole(), d, nhs); err != nil {
				return nil, fmt.Errorf("routes: %w", err)
			}
			continue
		}
		if scope != nil && scope.HasTable(state.TableMain) {
			// The big table is main, if any: one pass (dumpScoped), or
			// what the cache kept of the last one.
			read := o.Cache.begin(h.name)
			if e, ok := read.get(af, scope, o.CompactRoutes); ok {
				mark := len(s.Routes)
				s.Routes, s.RouteSets = append(s.Routes, e.routes...), append(s.RouteSets, e.sets...)
				if !o.CompactRoutes {
					// A plain read annotates the nexthops (learnMembers):
					// its own copies, not the cache's.
					for i := mark; i < len(s.Routes); i++ {
						s.Routes[i].Nexthops = slices.Clone(s.Routes[i].Nexthops)
					}
				}
				read.end()
				continue
			}
			var g *routeGroups
			if o.CompactRoutes {
				g = &groups
			}
			markRoutes, markSets, big := len(s.Routes), len(s.RouteSets), map[uint32]bool{}
			if s.Routes, err = c.dumpScoped(s.Routes, g, af, scope, d, nhs, big); err != nil {
				read.end()
				return nil, fmt.Errorf("routes: %w", err)
			}
			if g != nil {
				s.RouteSets, s.Routes = groups.finish(s.RouteSets, s.Routes, o.compactMin())
			}
			if o.CompactRoutes { // a plain read's routes are annotated below
				read.put(af, scope, true, s.Routes[markRoutes:], s.RouteSets[markSets:], big, d, nhs)
			}
			read.end()
			continue
		}
		var read *cacheRead // nil: not through the cache
		if scope == nil && o.CompactRoutes {
			// A whole read (a config with route lists): served from, and
			// kept in, the cache if any; any route event of the family
			// drops it.
			read = o.Cache.begin(h.name)
			if e, ok := read.get(af, nil, true); ok {
				s.Routes, s.RouteSets = append(s.Routes, e.routes...), append(s.RouteSets, e.sets...)
				read.end()
				continue
			}
		}
		markRoutes, markSets := len(s.Routes), len(s.RouteSets)
		if !o.CompactRoutes {
			s.Routes, err = c.dumpRoutes(s.Routes, af, own, d, nhs)
		} else if s.Routes, err = c.dumpRoutesCompact(s.Routes, &groups, af, d, nhs, scope != nil); err == nil {
			s.RouteSets, s.Routes = groups.finish(s.RouteSets, s.Routes, o.compactMin())
		}
		if err != nil {
			read.end()
			return nil, fmt.Errorf("routes: %w", err)
		}
		read.put(af, nil, true, s.Routes[markRoutes:], s.RouteSets[markSets:], nil, d, nhs)
		read.end()
		if scope == nil {
			continue
		}
		for _, t := range scope.Tables {
			if s.Routes, err = c.dumpForeignScoped(s.Routes, af, t, scope, d, nhs); err != nil {
				return nil, fmt.Errorf("routes of table %d: %w", t, err)
			}
		}
	}
	if !o.CompactRoutes {
		// the planner (compact reads) needs no member attributes; fib does
		c.learnMembers(s.Routes, s.Rules, d)
	}
	if err := c.annotateGroups(s, d); err != nil {
		return nil, fmt.Errorf("nexthop objects: %w", err)
	}
	if s.AddrLabels, err = c.dumpAddrLabels(d); err != nil {
		return nil, fmt.Errorf("address labels: %w", err)
	}
	err = inNetns(h.ns, func() error {
		names := sysctlNames(devs)
		if o.CompactRoutes {
			// A plan sets only namespace-wide sysctls (forwarding in a
			// routing domain); the per-device ones are for explain.
			names = sysctlNames(nil)
		}
		s.Sysctls = readSysctls(names)
		readDisablePolicy(s.Links)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sysctls: %w", err)
	}
	if v, err := strconv.ParseUint(s.Sysctls["net.ipv4.fib_multipath_hash_seed"], 10, 32); err == nil && v != 0 {
		seed := uint32(v)
		s.Hidden.MultipathHashSeed = &seed
	}
	if err := h.readWireGuard(s.Links); err != nil {
		return nil, err
	}
	if s.Firewall, err = h.readFirewall(); err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	return s, nil
}

// defaultRules4 reports whether rules are exactly the kernel's three
// default IPv4 rules.
func defaultRules4(rules []state.Rule) bool {
	want := []struct {
		pref, table uint32
	}{{0, state.TableLocal}, {32766, state.TableMain}, {32767, state.TableDefault}}
	if len(rules) != len(want) {
		return false
	}
	for i, r := range rules {
		d := state.NewRule(4)
		d.Priority, d.Table, d.Protocol = want[i].pref, want[i].table, r.Protocol
		if !equalRule(r, d) {
			return false
		}
	}
	return true
}

func equalRule(a, b state.Rule) bool {
	if (a.SPort == nil) != (b.SPort == nil) || (a.DPort == nil) != (b.DPort == nil) || (a.UID == nil) != (b.UID == nil) {
		return false
	}
	a.SPort, a.DPort, a.UID = nil, nil, nil
	b.SPort, b.DPort, b.UID = nil, nil, nil
	return a == b
}
