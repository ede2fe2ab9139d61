package compile

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// Health says which identities pass their health checks, by identity
// name (the prober's Health()). An identity absent from the map counts as
// healthy: it has no health check, or the prober has not judged it yet.
type Health map[string]bool

// of is the share of the map of the i-th domain of a system (0 is the
// top namespace, whose identities go by their bare names).
func (h Health) of(i int, domain string) Health {
	if i == 0 || h == nil {
		return h
	}
	out := Health{}
	for k, v := range h {
		if rest, ok := strings.CutPrefix(k, domain+"/"); ok {
			out[rest] = v
		}
	}
	return out
}

// healthy reports whether the identity passes its health check.
func (h Health) healthy(name string) bool {
	up, known := h[name]
	return !known || up
}

// GroupState is how a group compiled: which members carry its traffic
// and why (explain and status show it).
type GroupState struct {
	Name string
	// Kind is "failover" or "balance".
	Kind string
	// Active are the members carrying the traffic (one for failover).
	Active []string
	// Clear is set when the active failover member is not a tunnel
	// (`fallback: clear` allowed it).
	Clear bool `json:",omitempty"`
	Why   string
}

// path is one nexthop of a balance group's multipath route.
type path struct {
	dev    string
	gw4    netip.Addr
	gw6    netip.Addr
	has4   bool
	has6   bool
	weight int
}

// groups settles each group against the health map: a failover group
// stands for its first healthy member, a balance group for a multipath
// route over its healthy members with their weights (and its own table,
// for selectors).
func (c *compiler) groups(tables *tableAllocator) error {
	for _, g := range c.cfg.Groups {
		if g.Balance != nil {
			c.balance(g, tables)
			continue
		}
		c.failover(g)
	}
	c.multipathHash()
	return nil
}

func (c *compiler) failover(g *config.Group) {
	gs := GroupState{Name: g.Name, Kind: "failover"}
	var active *Identity
	var skipped []string
	for _, m := range g.Failover {
		id := c.ids[m]
		why, linkDown := c.linkDown(id)
		switch {
		case id.Down:
			skipped = append(skipped, m+" is not up")
		case linkDown:
			skipped = append(skipped, m+": "+why)
		case !c.health.healthy(m):
			skipped = append(skipped, m+" fails its health check")
		default:
			active = id
		}
		if active != nil {
			break
		}
	}
	if active == nil {
		// Nothing healthy: stay on the first member that exists. A dead
		// path drops the traffic; going around it (to the main table's
		// route, in clear) is never chosen here.
		for _, m := range g.Failover {
			if !c.ids[m].Down {
				active = c.ids[m]
				break
			}
		}
	}
	if active == nil {
		gs.Why = "no member is up"
		c.ids[g.Name] = &Identity{Name: g.Name, Down: true}
		c.note("group %s: no member is up; what goes through it is not installed (the kill switch, if any, holds)", g.Name)
		c.res.Groups = append(c.res.Groups, gs)
		return
	}
	gs.Active = []string{active.Name}
	switch {
	case len(skipped) == 0:
		gs.Why = active.Name + " is the first member and healthy"
	case !c.health.healthy(active.Name) || c.isLinkDown(active):
		gs.Why = "no member is healthy; staying on " + active.Name + " (" + join(skipped) + ")"
		c.note("group %s: no member is healthy; traffic stays on %s", g.Name, active.Name)
	default:
		gs.Why = join(skipped)
		c.note("group %s: %s carries the traffic (%s)", g.Name, active.Name, join(skipped))
	}
	gs.Clear = !c.cfg.IsTunnel(active.Name) && c.anyTunnel(g.Failover)
	c.ids[g.Name] = active
	c.res.Groups = append(c.res.Groups, gs)
}

// linkDown is the passive signal: the member's device is down or has
// lost its carrier (the cable, the veth's peer, a tun's daemon): no
// probe needs to time out to know.
func (c *compiler) linkDown(id *Identity) (string, bool) {
	l, ok := c.f.links[id.Device]
	switch {
	case id.Down || !ok:
		return "", false
	case !l.Up:
		return id.Device + " is down", true
	case !l.Carrier:
		return id.Device + " has no carrier", true
	}
	return "", false
}

func (c *compiler) isLinkDown(id *Identity) bool {
	_, down := c.linkDown(id)
	return down
}

func (c *compiler) anyTunnel(members []string) bool {
	for _, m := range members {
		if c.cfg.IsTunnel(m) {
			return true
		}
	}
	return false
}

func (c *compiler) balance(g *config.Group, tables *tableAllocator) {
	gs := GroupState{Name: g.Name, Kind: "balance"}
	gid := &Identity{Name: g.Name, Table: tables.get()}
	pick := func(needHealthy bool) {
		gid.paths, gs.Active = nil, nil
		gid.Has4, gid.Has6 = false, false
		for _, w := range g.Balance {
			id := c.ids[w.Identity]
			_, linkDown := c.linkDown(id)
			if id.Down || (needHealthy && (linkDown || !c.health.healthy(w.Identity))) {
				continue
			}
			gid.paths = append(gid.paths, path{dev: id.Device, gw4: id.Gateway4, gw6: id.Gateway6,
				has4: id.Has4, has6: id.Has6, weight: w.Weight})
			gid.Has4 = gid.Has4 || id.Has4
			gid.Has6 = gid.Has6 || id.Has6
			gs.Active = append(gs.Active, w.Identity)
		}
	}
	pick(true)
	gs.Why = "healthy members share the load by weight"
	if len(gid.paths) == 0 {
		pick(false)
		gs.Why = "no member is healthy; the load stays shared over those that are up"
	}
	if len(gid.paths) == 0 {
		gid.Down = true
		gs.Why = "no member is up"
		c.note("group %s: no member is up; what goes through it is not installed", g.Name)
	} else if len(gs.Active) < len(g.Balance) {
		c.note("group %s: carrying the traffic: %s (the others fail their health checks or are not up)", g.Name, strings.Join(gs.Active, ", "))
	}
	c.ids[g.Name] = gid
	c.res.Groups = append(c.res.Groups, gs)
	if gid.Down {
		return
	}
	// The group's own table, for selectors: a multipath default route.
	for _, v6 := range []bool{false, true} {
		if r, ok := c.throughRoute(gid, anyPrefix(v6), netip.Addr{}, gid.Table); ok {
			_ = c.addRoute(r, g.At("balance"))
		}
	}
}

// throughRoute is the route to dst through an identity or a group: via
// its device and gateway with src (a failover group is its active
// member), or, for a balance group, a weighted multipath route over the
// members of dst's family (without a preferred source: each path's
// device gives its own). ok is false when nothing of that family is there.
func (c *compiler) throughRoute(id *Identity, dst netip.Prefix, src netip.Addr, table uint32) (state.Route, bool) {
	v6 := dst.Addr().Is6()
	if id.paths == nil {
		return c.deviceRoute(dst, id.Device, id.gateway(v6), src, table), true
	}
	var nhs []state.Nexthop
	for _, p := range id.paths {
		if (v6 && !p.has6) || (!v6 && !p.has4) {
			continue
		}
		gw := p.gw4
		if v6 {
			gw = p.gw6
		}
		nhs = append(nhs, state.Nexthop{Gateway: gw, Dev: p.dev, Weight: p.weight})
	}
	switch len(nhs) {
	case 0:
		return state.Route{}, false
	case 1:
		return c.deviceRoute(dst, nhs[0].Dev, nhs[0].Gateway, netip.Addr{}, table), true
	}
	r := state.Route{Table: table, Type: state.RouteUnicast, Dst: dst, Protocol: state.Proto, Nexthops: nhs}
	if v6 {
		r.Metric = ipv6DefaultMetric
	}
	return r, true
}

// groupClear allows in the kill switch what a failover group sends in
// clear after failing over from its tunnels (`fallback: clear`): its
// routes' destinations, or everything for the redirect, out of the clear
// member's device only.
func (c *compiler) groupClear() []state.FwRule {
	var out []state.FwRule
	for _, gs := range c.res.Groups {
		if !gs.Clear {
			continue
		}
		id := c.ids[gs.Name]
		for _, v6 := range []bool{false, true} {
			if !id.has(v6) {
				continue
			}
			var to []netip.Prefix
			whole := c.cfg.Redirect != nil && c.cfg.Redirect.Via == gs.Name
			for _, r := range c.cfg.Routes {
				if r.Via == gs.Name {
					to = append(to, familyOf(r.To, v6)...)
				}
			}
			if !whole && len(to) == 0 {
				continue
			}
			if whole {
				to = nil
			}
			out = append(out, state.FwRule{Comment: fmt.Sprintf("group %s fell back to clear via %s", gs.Name, id.Name),
				Family: fam(v6), OIF: []string{id.Device}, Daddr: to, Verdict: "accept"})
		}
	}
	return out
}

// devices are the devices traffic through the identity or group leaves by.
func (id *Identity) devices() []string {
	if id.paths == nil {
		return []string{id.Device}
	}
	var out []string
	for _, p := range id.paths {
		out = append(out, p.dev)
	}
	return out
}

// memberServers are the servers of every member's vpn (a redirect through
// a failover group keeps each tunnel's own connection on the uplink, so
// the standby is ready when the active one fails).
func (c *compiler) memberServers(name string) []netip.Addr {
	g := c.cfg.Group(name)
	if g == nil {
		return c.vpnServers(c.ids[name].VPN)
	}
	var out firstSeen[netip.Addr]
	for _, m := range g.Members() {
		out.add(c.vpnServers(c.ids[m].VPN)...)
	}
	return out.list
}

func join(parts []string) string {
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += "; "
		}
		s += p
	}
	return s
}
