package compile

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// vpnServers are a VPN's servers' addresses: those in the config, then
// those its hook reported.
func (c *compiler) vpnServers(name string) []netip.Addr {
	var out firstSeen[netip.Addr]
	if v := c.cfg.VPN(name); v != nil {
		for _, e := range v.Servers {
			out.add(e.Addr)
		}
	}
	if vf := c.vpns[name]; vf != nil {
		for _, e := range vf.Servers {
			out.add(e.Addr)
		}
	}
	return out.list
}

// pushedRoutes installs the routes a VPN pushes (OpenVPN's route_network_N
// under route-noexec, tinc's peer subnets) through its identity, as the
// daemon would have. Default routes are left to `redirect`; a route the
// config already makes wins, with a note.
func (c *compiler) pushedRoutes() {
	for i := range c.res.Identities {
		id := &c.res.Identities[i]
		v := c.cfg.VPN(id.VPN)
		vf := c.vpns[id.VPN]
		if id.Down || v == nil || vf == nil || !v.PushedRoutes {
			continue
		}
		for _, p := range vf.Routes {
			v6 := p.Addr().Is6()
			src, ok := id.addr(v6)
			if p.Bits() == 0 || !ok {
				continue
			}
			r := c.deviceRoute(p, id.Device, id.gateway(v6), src, state.TableMain)
			if _, taken := c.routes[r.Key()]; taken {
				c.note("vpn %s pushes %s, which the config routes already; the config wins", id.VPN, p)
				continue
			}
			if _, taken := c.setKeys[keyOf(r.Table, r.Dst)]; taken {
				c.note("vpn %s pushes %s, which a route list routes already; the list wins", id.VPN, p)
				continue
			}
			if other, held := c.foreignRoute(r.Key()); held && !sameButOwner(&r, other) {
				// One bad pushed route must not block the rest of the
				// config: the kernel would refuse it, and the plan would
				// refuse to take another's route.
				c.note("vpn %s pushes %s, which %s holds already; not added, the rest applies", id.VPN, p, describeHolder(other))
				continue
			}
			c.routes[r.Key()] = config.Pos{Field: "vpn " + id.VPN + " (pushed)"}
			c.res.State.Routes = append(c.res.State.Routes, r)
		}
	}
}

// foreignRoute is the observed route with this key that tunroute does
// not own, if any.
func (c *compiler) foreignRoute(k state.RouteKey) (*state.Route, bool) {
	for i := range c.f.s.Routes {
		r := &c.f.s.Routes[i]
		if !r.Owned() && r.Key() == k {
			return r, true
		}
	}
	return nil, false
}

// describeHolder names who put a route there, for a note: its device and
// routing protocol ("a route of dev eth0, proto kernel").
func describeHolder(r *state.Route) string {
	s := "a route"
	if len(r.Nexthops) > 0 && r.Nexthops[0].Dev != "" {
		s += " of dev " + r.Nexthops[0].Dev
	}
	return s + ", proto " + r.Protocol.String() + ","
}

// sameButOwner reports whether the route another holds is the one tunroute
// wants but for its owner (the tunnel's own connected route): the plan
// keeps it as it is.
func sameButOwner(want, have *state.Route) bool {
	mine := *want
	mine.Protocol = have.Protocol
	return mine.Equal(have)
}
