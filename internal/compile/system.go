package compile

import (
	"fmt"
	"net/netip"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// Chains of the pipe firewall in each domain.
const (
	ChainPipeInput   = "pipe_input"
	ChainPipeForward = "pipe_forward"
	ChainPipeNAT     = "pipe_nat"
	ChainPipeNATIn   = "pipe_nat_in"
)

// System is a config compiled for every namespace it covers: the top level
// first, then the domains in config order.
type System struct {
	Domains []Domain
}

// Domain is one namespace's share of the system.
type Domain struct {
	// Name is the domain's name, config.HostDomain for the top level.
	Name string
	// Netns is the namespace ("" for the one tunroute runs in).
	Netns string
	// Owned: tunroute creates this namespace (every domain but the top).
	Owned bool
	// Exists: the namespace exists now.
	Exists bool
	Result *Result
	// Moves are interfaces to move from the top namespace into this one.
	Moves      []string
	ResolvConf []netip.Addr
	// Sysctls are set in a domain's namespace (tunroute owns it); the
	// top namespace's are never touched.
	Sysctls map[string]string
}

// Observed is what the namespaces hold now, by namespace name ("" or
// --netns for the top); a domain whose namespace does not exist is absent.
type Observed map[string]*state.State

// CompileSystem compiles the top level (in namespace top) and every domain.
// vpns are the runtime facts by VPN name; VPN names are unique across the
// config, and their hooks store facts with the top namespace's.
func CompileSystem(cfg *config.Config, top string, observed Observed, vpns map[string]*facts.VPN) (*System, error) {
	topObs := observed[top]
	if topObs == nil {
		return nil, fmt.Errorf("the namespace tunroute runs on was not observed")
	}
	sys := &System{Domains: []Domain{{Name: config.HostDomain, Netns: top, Exists: true}}}
	bodies := []*config.Config{cfg}
	obs := []*state.State{cloneFacts(topObs)}
	for _, dm := range cfg.Domains {
		o, exists := observed[dm.Name]
		if !exists {
			o = emptyNamespace(dm.Name)
		}
		fwd := "0"
		if dm.Forwarding {
			fwd = "1"
		}
		d := Domain{Name: dm.Name, Netns: dm.Name, Owned: true, Exists: exists, ResolvConf: dm.ResolvConf,
			Sysctls: map[string]string{"net.ipv4.ip_forward": fwd, "net.ipv6.conf.all.forwarding": fwd}}
		o = cloneFacts(o)
		for _, dev := range dm.Interfaces {
			if hasLink(o, dev) {
				continue
			}
			if !hasLink(topObs, dev) {
				continue // not there yet: the hook that brings it up moves it
			}
			d.Moves = append(d.Moves, dev)
			carryLink(o, topObs, dev)
		}
		sys.Domains = append(sys.Domains, d)
		bodies = append(bodies, dm.Config)
		obs = append(obs, o)
	}
	index := map[string]int{}
	for i, d := range sys.Domains {
		index[d.Name] = i
	}
	// Pipe devices exist for the domains' compile (identities may use
	// them) as they will once made: with their addresses (tunroute's)
	// and the connected routes the kernel makes for them, so that an
	// identity on a pipe compiles the same before and after.
	for _, p := range cfg.Pipes {
		for _, e := range []*config.PipeEnd{&p.A, &p.B} {
			o := obs[index[e.Domain]]
			if !hasLink(o, e.Device) {
				o.Links = append(o.Links, state.Link{Index: nextIndex(o), Name: e.Device, Kind: "veth", Up: true, Carrier: true})
				for _, a := range e.Addrs {
					o.Addrs = append(o.Addrs, state.Addr{Dev: e.Device, Prefix: a, Scope: state.ScopeUniverse, Proto: state.Proto})
					o.Routes = append(o.Routes, connectedRoute(a, e.Device))
				}
			}
		}
	}
	compilers := make([]*compiler, len(sys.Domains))
	for i := range sys.Domains {
		d := &sys.Domains[i]
		c := newCompiler(bodies[i], obs[i], vpns)
		c.res.State.Namespace = d.Netns
		if i > 0 {
			c.underlayNS = top
			if top == "" {
				c.underlayNS = state.HostNamespace
			}
		}
		compilers[i] = c
	}
	for _, p := range cfg.Pipes {
		if err := pipe(p, sys, index, compilers); err != nil {
			return nil, err
		}
	}
	for i, c := range compilers {
		if err := c.body(); err != nil {
			return nil, err
		}
		for _, dev := range sys.Domains[i].Moves {
			c.note("%s is moved in from %s", dev, nsName(top))
		}
		sys.Domains[i].Result = c.res
	}
	return sys, nil
}

// pipe adds a pipe's objects to both ends' domains: the veth pair (made
// by the end that comes first, its peer placed straight into the other
// namespace), the addresses, the routes into the pipe, and the firewall
// that lets only the declared flows across.
func pipe(p *config.Pipe, sys *System, index map[string]int, cs []*compiler) error {
	a, b := &p.A, &p.B
	ia, ib := index[a.Domain], index[b.Domain]
	if ia > ib {
		a, b, ia, ib = b, a, ib, ia
	}
	alias := state.LinkAliasPrefix + "pipe " + p.Name
	cs[ia].res.State.Links = append(cs[ia].res.State.Links, state.Link{Name: a.Device, Kind: "veth",
		Peer: b.Device, PeerNamespace: sys.Domains[ib].Netns, Up: true, Alias: alias})
	cs[ib].res.State.Links = append(cs[ib].res.State.Links, state.Link{Name: b.Device, Kind: "veth",
		Peer: a.Device, PeerNamespace: sys.Domains[ia].Netns, Up: true, Alias: alias, CreatedByPeer: true})
	for _, e := range []struct {
		end, other *config.PipeEnd
		c          *compiler
		otherName  string
	}{{a, b, cs[ia], sys.Domains[ib].Name}, {b, a, cs[ib], sys.Domains[ia].Name}} {
		for _, addr := range e.end.Addrs {
			ad := state.Addr{Dev: e.end.Device, Prefix: addr, Scope: state.ScopeUniverse, Proto: state.Proto}
			if addr.Addr().Is6() {
				ad.Flags = state.AddrNoDAD
			}
			e.c.res.State.Addrs = append(e.c.res.State.Addrs, ad)
		}
		for _, dst := range e.end.Routes {
			v6 := dst.Addr().Is6()
			var gw netip.Addr
			for _, x := range e.other.Addrs {
				if x.Addr().Is6() == v6 {
					gw = x.Addr()
					break
				}
			}
			r := e.c.deviceRoute(dst, e.end.Device, gw, netip.Addr{}, state.TableMain)
			if err := e.c.addRoute(r, p.At("routes")); err != nil {
				return err
			}
		}
		pipeFirewall(p, e.end, e.otherName, e.c)
	}
	return nil
}

// pipeFirewall guards one end: what comes out of the pipe into this
// domain must be a reply or a declared flow from the other domain.
func pipeFirewall(p *config.Pipe, end *config.PipeEnd, from string, c *compiler) {
	if p.Allow != nil {
		var rules []state.FwRule
		rules = append(rules, state.FwRule{Comment: "pipe " + p.Name + ": replies", IIF: []string{end.Device},
			CtState: []string{"established", "related"}, Verdict: "accept"})
		// Without neighbour discovery on the link no IPv6 packet crosses
		// the pipe, declared or not (it is link-local: never forwarded).
		nd := state.FwRule{Comment: "pipe " + p.Name + ": IPv6 neighbour discovery", Family: 6, IIF: []string{end.Device},
			Proto: 58, ICMPv6Types: ndTypes, Verdict: "accept"}
		for _, f := range p.Allow {
			if f.From != from {
				continue
			}
			for _, v6 := range []bool{false, true} {
				to := familyOf(f.To, v6)
				if len(f.To) > 0 && len(to) == 0 {
					continue
				}
				rules = append(rules, state.FwRule{Comment: "pipe " + p.Name + ": declared flow from " + from,
					Family: fam(v6), IIF: []string{end.Device}, Daddr: to, Proto: f.Proto, DPorts: f.Ports, Verdict: "accept"})
			}
		}
		rules = append(rules, state.FwRule{Comment: "pipe " + p.Name + ": undeclared flow from " + from,
			IIF: []string{end.Device}, Counter: true, Verdict: "drop"})
		// One chain at a time: chain() may move the chains it returns.
		in := c.firewall().chain(ChainPipeInput, "filter", "input", 0)
		in.Rules = append(in.Rules, rules[0], nd)
		in.Rules = append(in.Rules, rules[1:]...)
		fwd := c.firewall().chain(ChainPipeForward, "filter", "forward", 0)
		fwd.Rules = append(fwd.Rules, rules...)
	}
	if nm := end.Netmap; nm != nil {
		fam := fam(nm.Inside.Addr().Is6())
		pre := c.firewall().chain(ChainPipeNATIn, "nat", "prerouting", -100)
		pre.Rules = append(pre.Rules, state.FwRule{Comment: "pipe " + p.Name + ": 1:1 NAT in", Family: fam,
			IIF: []string{end.Device}, Daddr: []netip.Prefix{nm.Outside}, DNATPrefix: nm.Inside})
		post := c.firewall().chain(ChainPipeNAT, "nat", "postrouting", 100)
		post.Rules = append(post.Rules, state.FwRule{Comment: "pipe " + p.Name + ": 1:1 NAT out", Family: fam,
			OIF: []string{end.Device}, Saddr: []netip.Prefix{nm.Inside}, SNATPrefix: nm.Outside})
	}
	if end.Masquerade {
		nat := c.firewall().chain(ChainPipeNAT, "nat", "postrouting", 100)
		nat.Rules = append(nat.Rules, state.FwRule{Comment: "pipe " + p.Name + ": masquerade what comes through it",
			IIF: []string{end.Device}, NotOIF: []string{end.Device}, Masquerade: true})
	}
}

func emptyNamespace(name string) *state.State {
	return &state.State{Version: state.Version, Namespace: name,
		Links: []state.Link{{Index: 1, Name: "lo", Up: true, Carrier: true, Loopback: true}}}
}

// cloneFacts copies the parts of a state compile reads and extends.
func cloneFacts(s *state.State) *state.State {
	c := *s
	c.Links = append([]state.Link(nil), s.Links...)
	c.Addrs = append([]state.Addr(nil), s.Addrs...)
	c.Routes = append([]state.Route(nil), s.Routes...)
	return &c
}

func hasLink(s *state.State, name string) bool {
	for i := range s.Links {
		if s.Links[i].Name == name {
			return true
		}
	}
	return false
}

func nextIndex(s *state.State) int {
	n := 0
	for i := range s.Links {
		if s.Links[i].Index > n {
			n = s.Links[i].Index
		}
	}
	return n + 1
}

// carryLink copies a device, its addresses and the routes the kernel
// made for them (the connected prefixes, in the main and local tables)
// from one state into another, as moving it will: kernel.MoveLink puts
// the addresses back, and the kernel makes those routes again. Other
// routes through the device stay behind (the kernel deletes them).
func carryLink(to, from *state.State, dev string) {
	for i := range from.Links {
		if from.Links[i].Name == dev {
			l := from.Links[i]
			l.Index = nextIndex(to)
			to.Links = append(to.Links, l)
		}
	}
	for _, a := range from.Addrs {
		if a.Dev == dev {
			to.Addrs = append(to.Addrs, a)
		}
	}
	for _, r := range from.Routes {
		if r.Protocol != protoKernel || (r.Table != state.TableMain && r.Table != state.TableLocal) ||
			len(r.Nexthops) != 1 || r.Nexthops[0].Dev != dev || r.Nexthops[0].Gateway.IsValid() {
			continue
		}
		r.Nexthops = []state.Nexthop{{Dev: dev, Flags: r.Nexthops[0].Flags}}
		to.Routes = append(to.Routes, r)
	}
}

// connectedRoute is the route the kernel makes for address a on dev.
func connectedRoute(a netip.Prefix, dev string) state.Route {
	r := state.Route{Table: state.TableMain, Type: state.RouteUnicast, Dst: a.Masked(), Protocol: protoKernel,
		Scope: state.ScopeLink, PrefSrc: a.Addr(), Nexthops: []state.Nexthop{{Dev: dev}}}
	if a.Addr().Is6() {
		r.Scope, r.PrefSrc, r.Metric = state.ScopeUniverse, netip.Addr{}, 256
	}
	return r
}

// protoKernel is the protocol of the routes the kernel makes for an
// interface's addresses.
const protoKernel state.Protocol = 2

func nsName(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}
