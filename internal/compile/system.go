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
	// ChainPipeForwardOut guards what a namespace forwards into its pipes.
	ChainPipeForwardOut = "pipe_forward_out"
	// ChainPipeOutput holds a namespace's own traffic into a pipe to its
	// declared flows, where the pipe also carries flows it forwards.
	ChainPipeOutput = "pipe_output"
	ChainPipeNAT    = "pipe_nat"
	ChainPipeNATIn  = "pipe_nat_in"
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
	return CompileSystemHealth(cfg, top, observed, vpns, nil)
}

// CompileSystemHealth is CompileSystem with the health checks' verdicts
// (the prober's Health()): identities of the top namespace by name, a
// domain's as "DOMAIN/IDENTITY".
func CompileSystemHealth(cfg *config.Config, top string, observed Observed, vpns map[string]*facts.VPN, health Health) (*System, error) {
	topObs := observed[top]
	if topObs == nil {
		return nil, fmt.Errorf("the namespace tunroute runs on was not observed")
	}
	sys := &System{Domains: []Domain{{Name: config.HostDomain, Netns: top, Exists: true}}}
	bodies := []*config.Config{cfg}
	obs := []*state.State{topObs.CloneLists()}
	notes := [][]string{nil}
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
		o = o.CloneLists()
		var missing []string
		for _, dev := range dm.Interfaces {
			if hasLink(o, dev) {
				continue
			}
			if !hasLink(topObs, dev) {
				// Not there yet: the hook that brings it up moves it.
				missing = append(missing, dev)
				continue
			}
			d.Moves = append(d.Moves, dev)
			carryLink(o, topObs, dev)
		}
		sys.Domains = append(sys.Domains, d)
		bodies = append(bodies, dm.Config)
		obs = append(obs, o)
		notes = append(notes, nil)
		for _, dev := range missing {
			notes[len(notes)-1] = append(notes[len(notes)-1], fmt.Sprintf("interface %s does not exist in %s nor in the domain: nothing to move in "+
				"(the next apply moves it once it exists; a VPN's hook moves its tunnel when it comes up)", dev, nsName(top)))
		}
	}
	// The top namespace compiles as it will be after the apply: without
	// the devices moved into domains, with those that come back from
	// domains that are gone (the kill switch's on-link prefixes, for one,
	// follow them).
	for _, d := range sys.Domains[1:] {
		for _, dev := range d.Moves {
			dropLink(obs[0], dev)
		}
	}
	inConfig := map[string]bool{top: true}
	for _, dm := range cfg.Domains {
		inConfig[dm.Name] = true
	}
	for ns, o := range observed {
		if inConfig[ns] || o == nil {
			continue
		}
		for i := range o.Links {
			if l := &o.Links[i]; !l.Loopback && !l.Owned() && l.Name != "lo" && !hasLink(obs[0], l.Name) {
				carryLink(obs[0], o, l.Name)
			}
		}
	}
	index := map[string]int{}
	for i, d := range sys.Domains {
		index[d.Name] = i
	}
	for _, p := range cfg.Pipes {
		for _, e := range []*config.PipeEnd{&p.A, &p.B} {
			if err := checkPipeDevice(p, e, obs[index[e.Domain]], sys.Domains[index[e.Domain]].Netns); err != nil {
				return nil, err
			}
		}
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
		c.health = health.of(i, d.Name)
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
		if err := pipe(cfg, p, sys, index, compilers); err != nil {
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
		c.res.Notes = append(c.res.Notes, notes[i]...)
		if i == 0 {
			c.reportSysctls()
		} else {
			for k, v := range c.res.Sysctls {
				sys.Domains[i].Sysctls[k] = v
			}
		}
		sys.Domains[i].Result = c.res
	}
	for _, p := range cfg.Pipes {
		for _, e := range []*config.PipeEnd{&p.A, &p.B} {
			netmapReplies(p, e, compilers[index[e.Domain]])
		}
	}
	return sys, nil
}

// pipeAlias marks a pipe's veth devices as tunroute's and as this pipe's.
func pipeAlias(p *config.Pipe) string { return state.LinkAliasPrefix + "pipe " + p.Name }

// checkPipeDevice refuses a pipe end whose device exists in its
// namespace as another device than this pipe's: tunroute never adopts a
// device it did not make for this purpose (it would put the pipe's
// addresses on it, and the pipe would not work).
func checkPipeDevice(p *config.Pipe, e *config.PipeEnd, o *state.State, ns string) error {
	for i := range o.Links {
		l := &o.Links[i]
		if l.Name != e.Device || l.Alias == pipeAlias(p) {
			continue
		}
		if l.Owned() {
			return e.At("device").Errorf("device %s in %s is tunroute's %q, not pipe %s's; apply a config without it first, or give this end another device name",
				e.Device, nsName(ns), l.Alias, p.Name)
		}
		kind := l.Kind
		if kind == "" {
			kind = "device"
		}
		return e.At("device").Errorf("%s %s exists in %s and is not tunroute's: a pipe never takes over a device; remove it or give this end another device name (device: NAME)",
			kind, e.Device, nsName(ns))
	}
	return nil
}

// netmapReplies warns about an identity whose address a pipe end's
// netmap maps onto: its rule `from ADDR iif lo` sends the replies to
// connections netmapped in through the pipe out of the identity's
// device, not back into the pipe.
func netmapReplies(p *config.Pipe, e *config.PipeEnd, c *compiler) {
	if e.Netmap == nil {
		return
	}
	for _, id := range c.res.Identities {
		if id.Down || id.Device == e.Device {
			continue
		}
		for _, a := range id.Addrs {
			if e.Netmap.Inside.Contains(a.Addr()) {
				c.note("identity %s's rule `from %s iif lo` sends the replies to connections that come in through pipe %s (netmap %s to %s) out of %s, not back into the pipe: they time out. "+
					"Netmap onto addresses that are not an identity's, or give the identity another address",
					id.Name, a.Addr(), p.Name, e.Netmap.Outside, e.Netmap.Inside, id.Device)
			}
		}
	}
}

// pipe adds a pipe's objects to both ends' domains: the veth pair (made
// by the end that comes first, its peer placed straight into the other
// namespace), the addresses, the routes into the pipe, and the firewall
// that lets only the declared flows across.
func pipe(cfg *config.Config, p *config.Pipe, sys *System, index map[string]int, cs []*compiler) error {
	a, b := &p.A, &p.B
	ia, ib := index[a.Domain], index[b.Domain]
	if ia > ib {
		a, b, ia, ib = b, a, ib, ia
	}
	alias := pipeAlias(p)
	cs[ia].res.State.Links = append(cs[ia].res.State.Links, state.Link{Name: a.Device, Kind: "veth",
		Peer: b.Device, PeerNamespace: sys.Domains[ib].Netns, Up: true, Alias: alias})
	cs[ib].res.State.Links = append(cs[ib].res.State.Links, state.Link{Name: b.Device, Kind: "veth",
		Peer: a.Device, PeerNamespace: sys.Domains[ia].Netns, Up: true, Alias: alias, CreatedByPeer: true})
	for _, e := range []struct {
		end, other *config.PipeEnd
		c          *compiler
	}{{a, b, cs[ia]}, {b, a, cs[ib]}} {
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
			if err := e.c.addRoute(r, e.end.At("routes")); err != nil {
				return err
			}
		}
		pipeFirewall(cfg, p, e.end, e.other, e.c)
	}
	return nil
}

// pipeFirewall guards one end of a pipe, in that end's namespace: what
// comes out of the pipe into this domain must be a reply or a declared
// flow, and what this namespace forwards into the pipe must be a reply or
// a flow declared by its real origin (never "from" this namespace: its
// own traffic is what it originates, not what it forwards). The second
// guard is what keeps a domain with an open pipe to a forwarding host
// from reaching, through the host, a service declared for the host.
func pipeFirewall(cfg *config.Config, p *config.Pipe, end, other *config.PipeEnd, c *compiler) {
	if p.Allow != nil {
		pipeInbound(cfg, p, end, other, c)
		pipeForwardedInto(cfg, p, end, other, c)
		if forwardsDeclared(cfg, p, end, other) {
			pipeOwnInto(p, end, other, c)
		}
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

// pipeInbound: the declared flows that come out of the pipe here are the
// other end's own traffic, what it forwards from domains it has pipes
// to, and traffic from declared source prefixes; the rest but replies
// is counted and dropped, in the input and forward chains.
func pipeInbound(cfg *config.Config, p *config.Pipe, end, other *config.PipeEnd, c *compiler) {
	var rules []state.FwRule
	rules = append(rules, state.FwRule{Comment: "pipe " + p.Name + ": replies", IIF: []string{end.Device},
		CtState: []string{"established", "related"}, Verdict: "accept"})
	// Without neighbour discovery on the link no IPv6 packet crosses
	// the pipe, declared or not (it is link-local: never forwarded).
	nd := state.FwRule{Comment: "pipe " + p.Name + ": IPv6 neighbour discovery", Family: 6, IIF: []string{end.Device},
		Proto: 58, ICMPv6Types: ndTypes, Verdict: "accept"}
	for _, f := range p.Allow {
		switch {
		case f.From == end.Domain:
			continue // this domain's own traffic goes the other way
		case f.From == "" || f.From == other.Domain:
		case len(cfg.PipeDevices(other.Domain, f.From)) == 0:
			continue // it reaches the pipe through this end, not the other
		}
		rules = append(rules, flowRules(f, "pipe "+p.Name+": declared flow from "+f.Origin(),
			state.FwRule{IIF: []string{end.Device}}, f.To)...)
	}
	rules = append(rules, state.FwRule{Comment: "pipe " + p.Name + ": undeclared flow from " + other.Domain,
		IIF: []string{end.Device}, Counter: true, Verdict: "drop"})
	// One chain at a time: chain() may move the chains it returns.
	in := c.firewall().chain(ChainPipeInput, "filter", "input", 0)
	in.Rules = append(in.Rules, rules[0], nd)
	in.Rules = append(in.Rules, rules[1:]...)
	fwd := c.firewall().chain(ChainPipeForward, "filter", "forward", 0)
	fwd.Rules = append(fwd.Rules, rules...)
}

// pipeForwardedInto guards what this end's namespace forwards into the
// pipe: a declared flow of a domain with a pipe to this namespace
// (matched by the device it came in by) or from declared source
// prefixes. Its own chain: an accept by another pipe's inbound rules
// must not skip it.
func pipeForwardedInto(cfg *config.Config, p *config.Pipe, end, other *config.PipeEnd, c *compiler) {
	rules := []state.FwRule{{Comment: "pipe " + p.Name + ": replies forwarded into it", OIF: []string{end.Device},
		CtState: []string{"established", "related"}, Verdict: "accept"}}
	for _, f := range p.Allow {
		base := state.FwRule{OIF: []string{end.Device}}
		switch {
		case f.From == end.Domain || f.From == other.Domain:
			continue
		case f.From != "":
			base.IIF = cfg.PipeDevices(end.Domain, f.From)
			if len(base.IIF) == 0 {
				continue // it reaches the pipe through the other end
			}
		}
		// The other end's netmap rewrites the destination there: here
		// it is still the outside address.
		rules = append(rules, flowRules(f, "pipe "+p.Name+": forwarded into it, declared flow from "+f.Origin(),
			base, outsideOf(f.To, other.Netmap))...)
	}
	rules = append(rules, state.FwRule{Comment: "pipe " + p.Name + ": forwarded into it, undeclared", OIF: []string{end.Device},
		Counter: true, Verdict: "drop"})
	out := c.firewall().chain(ChainPipeForwardOut, "filter", "forward", 0)
	out.Rules = append(out.Rules, rules...)
}

// forwardsDeclared: the pipe declares flows of other domains that this
// end's namespace forwards into it. The other end cannot tell them from
// this namespace's own traffic (a mark does not cross namespaces), so
// this namespace's own traffic is held to its own flows where it leaves.
func forwardsDeclared(cfg *config.Config, p *config.Pipe, end, other *config.PipeEnd) bool {
	for _, f := range p.Allow {
		if f.From != "" && f.From != end.Domain && f.From != other.Domain && len(cfg.PipeDevices(end.Domain, f.From)) > 0 {
			return true
		}
	}
	return false
}

// pipeOwnInto holds what this end's namespace itself sends into the pipe
// to the flows declared from it (and replies, and neighbour discovery).
func pipeOwnInto(p *config.Pipe, end, other *config.PipeEnd, c *compiler) {
	rules := []state.FwRule{
		{Comment: "pipe " + p.Name + ": own replies into it", OIF: []string{end.Device},
			CtState: []string{"established", "related"}, Verdict: "accept"},
		{Comment: "pipe " + p.Name + ": IPv6 neighbour discovery", Family: 6, OIF: []string{end.Device},
			Proto: 58, ICMPv6Types: ndTypes, Verdict: "accept"},
	}
	for _, f := range p.Allow {
		if f.From == end.Domain {
			rules = append(rules, flowRules(f, "pipe "+p.Name+": own declared flow into it",
				state.FwRule{OIF: []string{end.Device}}, outsideOf(f.To, other.Netmap))...)
		}
	}
	rules = append(rules, state.FwRule{Comment: "pipe " + p.Name + ": own traffic into it, undeclared", OIF: []string{end.Device},
		Counter: true, Verdict: "drop"})
	out := c.firewall().chain(ChainPipeOutput, "filter", "output", 0)
	out.Rules = append(out.Rules, rules...)
}

// flowRules are the accept rules of one flow, one per family it covers,
// on top of base (its devices), with destinations to.
func flowRules(f config.Flow, comment string, base state.FwRule, to []netip.Prefix) []state.FwRule {
	var out []state.FwRule
	for _, v6 := range []bool{false, true} {
		dst, src := familyOf(to, v6), familyOf(f.Sources, v6)
		if len(to) > 0 && len(dst) == 0 || len(f.Sources) > 0 && len(src) == 0 {
			continue
		}
		r := base
		r.Comment, r.Family, r.Saddr, r.Daddr, r.Proto, r.DPorts, r.Verdict = comment, fam(v6), src, dst, f.Proto, f.Ports, "accept"
		out = append(out, r)
	}
	return out
}

// outsideOf maps the prefixes inside a netmap's inside range to the
// outside range (host bits kept); others stay as they are.
func outsideOf(ps []netip.Prefix, nm *config.Netmap) []netip.Prefix {
	if nm == nil {
		return ps
	}
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.Bits() < nm.Inside.Bits() || !nm.Inside.Contains(p.Addr()) {
			out = append(out, p)
			continue
		}
		in, base := p.Addr().As16(), nm.Outside.Addr().As16()
		bits := nm.Inside.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		for i := range in {
			keep := bits - 8*i // leading bits of this byte taken from the outside range
			switch {
			case keep >= 8:
				in[i] = base[i]
			case keep > 0:
				m := byte(0xff) << (8 - keep)
				in[i] = base[i]&m | in[i]&^m
			}
		}
		a := netip.AddrFrom16(in)
		if p.Addr().Is4() {
			a = a.Unmap()
		}
		out = append(out, netip.PrefixFrom(a, p.Bits()))
	}
	return out
}

func emptyNamespace(name string) *state.State {
	return &state.State{Version: state.Version, Namespace: name,
		Links: []state.Link{{Index: 1, Name: "lo", Up: true, Carrier: true, Loopback: true}}}
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
		if r.Protocol != state.ProtoKernel || (r.Table != state.TableMain && r.Table != state.TableLocal) ||
			len(r.Nexthops) != 1 || r.Nexthops[0].Dev != dev || r.Nexthops[0].Gateway.IsValid() {
			continue
		}
		r.Nexthops = []state.Nexthop{{Dev: dev, Flags: r.Nexthops[0].Flags}}
		to.Routes = append(to.Routes, r)
	}
}

// dropLink removes a device and what is on it from a state.
func dropLink(s *state.State, dev string) {
	links := s.Links[:0]
	for _, l := range s.Links {
		if l.Name != dev {
			links = append(links, l)
		}
	}
	s.Links = links
	addrs := s.Addrs[:0]
	for _, a := range s.Addrs {
		if a.Dev != dev {
			addrs = append(addrs, a)
		}
	}
	s.Addrs = addrs
	routes := s.Routes[:0]
	for _, r := range s.Routes {
		if len(r.Nexthops) != 1 || r.Nexthops[0].Dev != dev {
			routes = append(routes, r)
		}
	}
	s.Routes = routes
}

// connectedRoute is the route the kernel makes for address a on dev.
func connectedRoute(a netip.Prefix, dev string) state.Route {
	r := state.Route{Table: state.TableMain, Type: state.RouteUnicast, Dst: a.Masked(), Protocol: state.ProtoKernel,
		Scope: state.ScopeLink, PrefSrc: a.Addr(), Nexthops: []state.Nexthop{{Dev: dev}}}
	if a.Addr().Is6() {
		r.Scope, r.PrefSrc, r.Metric = state.ScopeUniverse, netip.Addr{}, 256
	}
	return r
}

func nsName(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}
