package compile

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
)

// live answers questions about the live namespace, looking only at what
// tunroute does not own: tunroute's own routes must never feed back into
// what it discovers (after a gateway redirect, "the route to the VPN
// server" would otherwise be tunroute's own host route).
type live struct {
	s     *state.State
	links map[string]*state.Link
	// declared are the addresses the config itself puts on the devices
	// it declares: an identity on such a device sees them before they
	// exist, so the first plan is already the whole plan.
	declared map[string][]netip.Prefix
}

func newLive(s *state.State) *live {
	f := &live{s: s, links: map[string]*state.Link{}}
	for i := range s.Links {
		f.links[s.Links[i].Name] = &s.Links[i]
	}
	return f
}

// globalAddrs returns the universe-scope addresses on dev that tunroute
// did not add, in kernel order.
func (f *live) globalAddrs(dev string) []state.Addr {
	var out []state.Addr
	for _, p := range f.declared[dev] {
		if p.Addr().IsGlobalUnicast() || p.Addr().IsPrivate() {
			out = append(out, state.Addr{Dev: dev, Prefix: p, Scope: state.ScopeUniverse})
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, a := range f.s.Addrs {
		if a.Dev == dev && a.Scope == state.ScopeUniverse && !a.Owned() &&
			a.Flags&state.AddrDADFailed == 0 {
			out = append(out, a)
		}
	}
	return out
}

// addrOn returns the address entry for a on dev, if present.
func (f *live) addrOn(dev string, a netip.Addr) (state.Addr, bool) {
	for _, p := range f.declared[dev] {
		if p.Addr() == a {
			return state.Addr{Dev: dev, Prefix: p, Scope: state.ScopeUniverse}, true
		}
	}
	for _, x := range f.s.Addrs {
		if x.Dev == dev && x.Prefix.Addr() == a {
			return x, true
		}
	}
	return state.Addr{}, false
}

// isLocal reports whether a is on any device, put there by someone other
// than tunroute.
func (f *live) isLocal(a netip.Addr) bool {
	for _, x := range f.s.Addrs {
		if x.Prefix.Addr() == a && !x.Owned() {
			return true
		}
	}
	return false
}

// mainRoute is the best foreign main-table unicast route covering dst, by
// longest prefix then lowest metric; ok is false when there is none.
// It is the answer `ip route get` gives from the main table before
// tunroute changed anything. onlyDev, if set, restricts to routes out of
// that device.
func (f *live) mainRoute(dst netip.Prefix, onlyDev string) (best *state.Route, ok bool) {
	for i := range f.s.Routes {
		r := &f.s.Routes[i]
		if r.Table != state.TableMain || r.Owned() || r.Type != state.RouteUnicast ||
			r.Is6() != dst.Addr().Is6() || r.Src.IsValid() && r.Src.Bits() != 0 {
			continue
		}
		if r.Dst.Bits() > dst.Bits() || !r.Dst.Contains(dst.Addr()) {
			continue
		}
		if onlyDev != "" && !routeUses(r, onlyDev) {
			continue
		}
		if dead(r) {
			continue
		}
		if best == nil || r.Dst.Bits() > best.Dst.Bits() ||
			r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric {
			best = r
		}
	}
	return best, best != nil
}

func routeUses(r *state.Route, dev string) bool {
	for _, nh := range r.Nexthops {
		if nh.Dev == dev {
			return true
		}
	}
	return false
}

func dead(r *state.Route) bool {
	if r.Flags&(state.NexthopDead|state.NexthopLinkdown) != 0 {
		return true
	}
	for _, nh := range r.Nexthops {
		if nh.Flags&state.NexthopDead == 0 {
			return false
		}
	}
	return len(r.Nexthops) > 0
}

// connected reports whether gw is on a link-scope (connected) route of dev.
func (f *live) connected(gw netip.Addr, dev string) bool {
	if gw.Is6() && gw.IsLinkLocalUnicast() {
		return true
	}
	for i := range f.s.Routes {
		r := &f.s.Routes[i]
		if r.Type != state.RouteUnicast || r.Owned() || !r.Dst.Contains(gw) || r.Dst.Bits() == 0 {
			continue
		}
		if r.Table != state.TableMain && r.Table != state.TableLocal {
			continue
		}
		for _, nh := range r.Nexthops {
			if nh.Dev == dev && !nh.Gateway.IsValid() {
				return true
			}
		}
	}
	return false
}
