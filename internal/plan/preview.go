package plan

import (
	"net/netip"
	"sort"

	"github.com/tunroute/tunroute/internal/state"
)

// Preview returns the state the namespace would be in after the plan
// that turns observed into desired: observed without tunroute's objects,
// with the desired ones (route sets expanded), and the routes the kernel
// makes for each address tunroute adds (its local route, and for a
// prefix shorter than a host its network route). explain -c uses it to
// show a config's effect before apply.
func Preview(desired, observed *state.State) *state.State {
	p := *observed
	p.Links = nil
	for _, l := range observed.Links {
		if !l.Owned() {
			p.Links = append(p.Links, l)
		}
	}
	for _, l := range desired.Links {
		if !hasLink(p.Links, l.Name) {
			l.Index = nextIndex(p.Links)
			p.Links = append(p.Links, l)
		}
	}
	p.Addrs = nil
	for _, a := range observed.Addrs {
		if !a.Owned() {
			p.Addrs = append(p.Addrs, a)
		}
	}
	p.Routes = nil
	for _, r := range observed.Routes {
		if !r.Owned() && !madeFor(r, observed.Addrs) {
			p.Routes = append(p.Routes, r)
		}
	}
	for _, a := range desired.Addrs {
		if hasAddr(p.Addrs, a.Key()) {
			continue
		}
		p.Addrs = append(p.Addrs, a)
		p.Routes = append(p.Routes, kernelRoutes(a)...)
	}
	p.Routes = append(p.Routes, desired.Routes...)
	for i := range desired.RouteSets {
		set := &desired.RouteSets[i]
		for _, d := range set.Dsts {
			p.Routes = append(p.Routes, set.Route(d))
		}
	}
	p.RouteSets = nil // observed sets are tunroute's own: replaced by the desired ones
	p.Rules = nil
	for _, r := range observed.Rules {
		if !r.Owned() {
			p.Rules = append(p.Rules, r)
		}
	}
	p.Rules = append(p.Rules, desired.Rules...)
	// The kernel keeps rules sorted by priority, a new rule after those of
	// equal priority.
	sort.SliceStable(p.Rules, func(i, j int) bool {
		a, b := &p.Rules[i], &p.Rules[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		return a.Priority < b.Priority
	})
	p.Firewall = desired.Firewall
	return &p
}

// madeFor reports whether r is a route the kernel made for one of
// tunroute's own addresses (it goes with the address).
func madeFor(r state.Route, addrs []state.Addr) bool {
	if r.Protocol != state.ProtoKernel {
		return false
	}
	for _, a := range addrs {
		if a.Owned() && r.PrefSrc == a.Prefix.Addr() {
			return true
		}
	}
	return false
}

// kernelRoutes are the routes the kernel adds with an address.
func kernelRoutes(a state.Addr) []state.Route {
	nh := []state.Nexthop{{Dev: a.Dev}}
	local := state.Route{Table: state.TableLocal, Type: state.RouteLocal, Dst: netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Addr().BitLen()),
		Protocol: state.ProtoKernel, Scope: state.ScopeHost, PrefSrc: a.Prefix.Addr(), Nexthops: nh}
	out := []state.Route{local}
	if a.Is6() {
		out[0].Scope, out[0].PrefSrc = state.ScopeUniverse, netip.Addr{}
	}
	if a.Prefix.Bits() < a.Prefix.Addr().BitLen() && a.Flags&state.AddrNoPrefixRoute == 0 {
		net := state.Route{Table: state.TableMain, Type: state.RouteUnicast, Dst: a.Prefix.Masked(), Protocol: state.ProtoKernel,
			Scope: state.ScopeLink, PrefSrc: a.Prefix.Addr(), Nexthops: nh}
		if a.Is6() {
			net.Scope, net.PrefSrc, net.Metric = state.ScopeUniverse, netip.Addr{}, 256
		}
		out = append(out, net)
	}
	return out
}

func hasLink(ls []state.Link, name string) bool {
	for i := range ls {
		if ls[i].Name == name {
			return true
		}
	}
	return false
}

func nextIndex(ls []state.Link) int {
	n := 0
	for i := range ls {
		if ls[i].Index > n {
			n = ls[i].Index
		}
	}
	return n + 1
}

func hasAddr(as []state.Addr, k state.AddrKey) bool {
	for i := range as {
		if as[i].Key() == k {
			return true
		}
	}
	return false
}
