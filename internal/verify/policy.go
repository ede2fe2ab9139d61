package verify

import (
	"net/netip"
	"slices"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// Policy is what the config says about packets, independently of the
// kernel objects it compiles to: the properties are checked against it.
type Policy struct {
	// KillSwitch: the config asks that nothing leave in clear unless allowed.
	KillSwitch bool
	// GuardForward: the kill switch also covers forwarded traffic.
	GuardForward bool
	// Clear lists what may leave in clear (by Dev, or any device when "").
	Clear []Allowed
	// Transport: a VPN's own packets to its server, which must never go
	// into that VPN's tunnel.
	Transport []Transport
	// DNS, when DNSGiven, are the only resolvers port 53 may reach.
	DNS      []netip.Addr
	DNSGiven bool
	// Intent: where the config sends packets; the first that holds decides.
	Intent []Intent
	// Infra is what must leave in clear for the host to work: DHCP,
	// neighbour discovery, the VPNs' own transport. The intent, fallback
	// and assertion checks leave it out.
	Infra []Allowed
	// Fallback is what a failover group sends in clear in this scenario
	// because its tunnels failed and the config allows it (`fallback:
	// clear`); it is in Clear too, and is no fallback leak.
	Fallback []Allowed
}

// infra reports whether the packet (with its wire source) is infrastructure.
func (p *Policy) infra(pk *Packet) bool {
	for _, a := range p.Infra {
		if a.Match.Contains(pk) {
			return true
		}
	}
	return false
}

// Allowed is one reason a packet may leave in clear.
type Allowed struct {
	Why   string
	Match Match
	Dev   string
}

// Transport is one VPN's traffic to its server.
type Transport struct {
	VPN, Dev string
	Match    Match
	// TunnelAddrs are the tunnel's own addresses: a packet bound to one
	// of them is traffic for the tunnel, not the tunnel's transport.
	TunnelAddrs []netip.Addr
}

func addrsOn(st *state.State, dev string) []netip.Addr {
	var out []netip.Addr
	for _, a := range st.Addrs {
		if a.Dev == dev {
			out = append(out, a.Prefix.Addr())
		}
	}
	return out
}

// Intent is where the config sends some packets: out of one of Devs, or
// nowhere when Devs is empty (blackhole and the like).
type Intent struct {
	Why   string
	Match Match
	Devs  []string
}

// Matches are the packet sets the policy names: the space is cut along them.
func (p *Policy) Matches() []Match {
	var ms []Match
	for _, a := range append(p.Clear, p.Infra...) {
		ms = append(ms, a.Match)
	}
	for _, t := range p.Transport {
		ms = append(ms, t.Match)
	}
	if p.DNSGiven {
		ms = append(ms, dnsMatch(), Match{Dst: hostPrefixes(p.DNS)})
	}
	for _, in := range p.Intent {
		ms = append(ms, in.Match)
	}
	return ms
}

func dnsMatch() Match {
	return Match{Protos: []uint8{6, 17}, DPorts: []state.PortRange{{Start: 53, End: 53}}}
}

func hostPrefixes(as []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range as {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// markZero: the intent and transport properties are about packets that
// carry no mark; a mark is set deliberately by a privileged process
// (wg-quick marks its own transport so), and selects its own route.
var markZero = Match{MarkMask: 0xffffffff}

func (m Match) and(o Match) Match {
	if o.MarkMask != 0 {
		m.Mark, m.MarkMask = o.Mark, o.MarkMask
	}
	m.Local = m.Local || o.Local
	return m
}

// PolicyOf derives the policy of one compiled namespace.
// st is the namespace's whole state with the config applied.
func PolicyOf(cfg *config.Config, res *compile.Result, st *state.State, vpns map[string]*facts.VPN) Policy {
	var p Policy
	via := newResolver(res)
	up := via.up
	tunnels := TunnelDevices(cfg, res)
	isTunnel := func(dev string) bool { return slices.Contains(tunnels, dev) }
	p.Infra = []Allowed{
		linkPlumbing,
		{Why: "DHCP", Match: Match{Family: 4, Protos: []uint8{17}, SPorts: []state.PortRange{{Start: 68, End: 68}}, DPorts: []state.PortRange{{Start: 67, End: 67}}}},
		{Why: "DHCPv6", Match: Match{Family: 6, Protos: []uint8{17}, SPorts: []state.PortRange{{Start: 546, End: 546}}, DPorts: []state.PortRange{{Start: 547, End: 547}}}},
	}
	for _, e := range servers(cfg, vpns) {
		p.Infra = append(p.Infra, Allowed{Why: "VPN server", Match: endpointMatch(e)})
	}
	if k := cfg.KillSwitch; k != nil {
		p.KillSwitch, p.GuardForward = true, k.Forward
		for _, a := range k.Allow {
			m := Match{Dst: a.To, Src: a.From, SPorts: a.SPorts, DPorts: a.Ports}
			if a.Proto != 0 {
				m.Protos = []uint8{a.Proto}
			}
			p.Clear = append(p.Clear, Allowed{Why: "killswitch.allow", Match: m})
		}
		if k.DHCP {
			p.Clear = append(p.Clear,
				Allowed{Why: "DHCP", Match: Match{Family: 4, Protos: []uint8{17}, SPorts: []state.PortRange{{Start: 68, End: 68}}, DPorts: []state.PortRange{{Start: 67, End: 67}}}},
				Allowed{Why: "DHCPv6", Match: Match{Family: 6, Protos: []uint8{17}, SPorts: []state.PortRange{{Start: 546, End: 546}}, DPorts: []state.PortRange{{Start: 547, End: 547}}}})
		}
		p.Clear = append(p.Clear, linkPlumbing)
		p.Clear = append(p.Clear, bgpSessions(cfg.BGP)...)
		for _, e := range servers(cfg, vpns) {
			p.Clear = append(p.Clear, Allowed{Why: "VPN server", Match: endpointMatch(e)})
		}
		for _, s := range cfg.Select {
			for _, dev := range via.devs(s.Via) {
				if !isTunnel(dev) {
					p.Clear = append(p.Clear, Allowed{Why: "selected around the tunnel via " + s.Via, Match: selectorMatch(s), Dev: dev})
				}
			}
		}
		p.Fallback = fallbacks(cfg, res, via)
		p.Clear = append(p.Clear, p.Fallback...)
		if k.DNSGiven {
			p.DNSGiven = true
			p.DNS = append(p.DNS, k.DNS...)
			if k.DNSFromVPN {
				for _, v := range cfg.VPNs {
					if f := vpns[v.Name]; f != nil {
						p.DNS = append(p.DNS, f.DNS...)
					}
				}
			}
		}
	}
	for _, v := range cfg.VPNs {
		f := vpns[v.Name]
		if f == nil || f.Down || f.Device == "" {
			continue
		}
		eps := slices.Clone(f.Servers)
		for _, e := range v.Servers {
			eps = append(eps, facts.Endpoint{Addr: e.Addr, Port: e.Port, Proto: e.Proto})
		}
		for _, e := range eps {
			p.Transport = append(p.Transport, Transport{VPN: v.Name, Dev: f.Device, TunnelAddrs: addrsOn(st, f.Device),
				Match: endpointMatch(e).and(markZero).and(Match{Local: true})})
		}
	}
	if r := cfg.Redirect; r != nil {
		if id, ok := up(r.Via); ok {
			for _, s := range r.Servers {
				p.Transport = append(p.Transport, Transport{VPN: r.Via, Dev: id.Device, TunnelAddrs: addrsOn(st, id.Device),
					Match: Match{Local: true, Dst: hostPrefixes([]netip.Addr{s})}.and(markZero)})
			}
		}
	}
	p.Intent = intents(cfg, res, st, vpns, up, via.devs)
	// Multicast, broadcast, link-local and loopback destinations are not
	// routed by the config's choices.
	var not []netip.Prefix
	for _, fam := range []int{4, 6} {
		not = append(not, specials(fam)...)
	}
	for _, r := range st.Routes {
		if r.Table == 255 {
			not = append(not, r.Dst) // this host's addresses and broadcasts
		}
	}
	for i := range p.Intent {
		p.Intent[i].Match.NotDst = append(p.Intent[i].Match.NotDst, not...)
	}
	return p
}

// TunnelDevices are the devices of the identities the config calls
// tunnels (killswitch.tunnels, else the identities with a vpn and the
// redirect's), whether up or not.
func TunnelDevices(cfg *config.Config, res *compile.Result) []string {
	var names []string
	if cfg.KillSwitch != nil && len(cfg.KillSwitch.Tunnels) > 0 {
		names = cfg.KillSwitch.Tunnels
	} else {
		for _, id := range cfg.Identities {
			if id.VPN != "" {
				names = append(names, id.Name)
			}
		}
		if cfg.Redirect != nil {
			names = append(names, cfg.Redirect.Via)
		}
	}
	var devs []string
	if cfg.KillSwitch == nil || len(cfg.KillSwitch.Tunnels) == 0 {
		// The kill switch counts a routed WireGuard device as a tunnel.
		for _, d := range cfg.Devices {
			if d.WireGuard != nil && d.WireGuard.Routing {
				devs = append(devs, d.Name)
			}
		}
	}
	for _, n := range names {
		for _, id := range res.Identities {
			if id.Name == n && id.Device != "" && !slices.Contains(devs, id.Device) {
				devs = append(devs, id.Device)
			}
		}
		if ci := cfg.Identity(n); ci != nil && ci.Device != "" && !slices.Contains(devs, ci.Device) {
			devs = append(devs, ci.Device)
		}
	}
	return devs
}

// linkPlumbing is what IPv6 needs on a link and the kill switch lets out
// (only on the link: the firewall also checks hop limit and addresses):
// router and neighbour solicitation, neighbour advertisement, MLD
// reports and done.
var linkPlumbing = Allowed{Why: "IPv6 neighbour discovery and MLD", Match: Match{Family: 6, Protos: []uint8{58},
	ICMP: []uint8{131, 132, 133, 135, 136, 143}}}

// bgpSessions are the declared BGP sessions the kill switch lets out in
// clear: TCP 179 to each peer (from our address when declared), either
// side opening it, and BFD when the speaker uses it; only what this host
// sends (the forward chain has no such exception).
func bgpSessions(b *config.BGP) []Allowed {
	if b == nil {
		return nil
	}
	var out []Allowed
	for _, nb := range b.Neighbors {
		m := Match{Local: true, Dst: hostPrefixes([]netip.Addr{nb.Address})}
		if nb.Local.IsValid() {
			m.Src = hostPrefixes([]netip.Addr{nb.Local})
		}
		why := "BGP session " + nb.Name
		bgp := []state.PortRange{{Start: 179, End: 179}}
		dst, src := m, m
		dst.Protos, dst.DPorts = []uint8{6}, bgp
		src.Protos, src.SPorts = []uint8{6}, bgp
		out = append(out, Allowed{Why: why, Match: dst}, Allowed{Why: why, Match: src})
		if b.BFD {
			bfd := m
			bfd.Protos, bfd.DPorts = []uint8{17}, []state.PortRange{{Start: 3784, End: 3784}}
			out = append(out, Allowed{Why: "BFD of " + why, Match: bfd})
		}
	}
	return out
}

func servers(cfg *config.Config, vpns map[string]*facts.VPN) []facts.Endpoint {
	var out []facts.Endpoint
	// A routed WireGuard device's peers are its servers.
	for _, d := range cfg.Devices {
		if d.WireGuard != nil && d.WireGuard.Routing {
			for _, pe := range d.WireGuard.Peers {
				if pe.Endpoint.IsValid() {
					out = append(out, facts.Endpoint{Addr: pe.Endpoint.Addr(), Port: pe.Endpoint.Port(), Proto: "udp"})
				}
			}
		}
	}
	for _, v := range cfg.VPNs {
		for _, e := range v.Servers {
			out = append(out, facts.Endpoint{Addr: e.Addr, Port: e.Port, Proto: e.Proto})
		}
		if f := vpns[v.Name]; f != nil {
			out = append(out, f.Servers...)
		}
	}
	if cfg.Redirect != nil {
		for _, s := range cfg.Redirect.Servers {
			out = append(out, facts.Endpoint{Addr: s})
		}
	}
	return out
}

func endpointMatch(e facts.Endpoint) Match {
	m := Match{Dst: hostPrefixes([]netip.Addr{e.Addr})}
	if e.Port != 0 && e.Proto != "" {
		m.Protos = []uint8{map[string]uint8{"udp": 17, "tcp": 6}[e.Proto]}
		m.DPorts = []state.PortRange{{Start: e.Port, End: e.Port}}
	}
	return m
}

func selectorMatch(s *config.Selector) Match {
	m := Match{Src: s.From, Dst: s.To, UID: s.UID, Cgroup: s.Cgroup}
	m.setProtoPorts(s.Proto, s.SPort, s.DPort)
	if s.IIF != "" {
		m.IIF = []string{s.IIF}
	}
	return m
}

// intents are where the config sends the traffic this host sends, in the
// order the kernel's rules consult them: local tables (priority 500),
// selectors (4000), identities' sources (5000), then the main table's
// routes, most specific first, then the redirect.
// devs are the devices traffic through a name may leave by (a balance
// group's every active member).
func intents(cfg *config.Config, res *compile.Result, st *state.State, vpns map[string]*facts.VPN, up func(string) (*compile.Identity, bool), devs func(string) []string) []Intent {
	var out []Intent
	local := Match{Local: true}.and(markZero)
	for _, l := range cfg.Local {
		if _, ok := up(l.Via); ok {
			m := local
			m.Dst = l.To
			out = append(out, Intent{Why: "local via " + l.Via, Match: m, Devs: devs(l.Via)})
		}
	}
	for _, s := range cfg.Select {
		if _, ok := up(s.Via); ok {
			m := selectorMatch(s).and(markZero)
			out = append(out, Intent{Why: "select via " + s.Via, Match: m, Devs: devs(s.Via)})
		}
	}
	for _, id := range res.Identities {
		if id.Down || id.Device == "" || len(id.Addrs) == 0 {
			continue
		}
		m := local
		for _, a := range id.Addrs {
			m.Src = append(m.Src, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
		}
		out = append(out, Intent{Why: "identity " + id.Name + "'s address", Match: m, Devs: []string{id.Device}})
	}
	type routeIntent struct {
		p  netip.Prefix
		in Intent
	}
	var rs []routeIntent
	for _, r := range cfg.Routes {
		if r.Table != 0 && r.Table != 254 || r.Type == state.RouteThrow {
			continue
		}
		var ds []string
		why := "routes: " + r.Type.String()
		if r.Type == state.RouteUnicast {
			if _, ok := up(r.Via); !ok {
				continue
			}
			ds, why = devs(r.Via), "routes via "+r.Via
		}
		for _, p := range r.To {
			m := local
			m.Dst = []netip.Prefix{p}
			rs = append(rs, routeIntent{p, Intent{Why: why, Match: m, Devs: ds}})
		}
	}
	slices.SortStableFunc(rs, func(a, b routeIntent) int { return b.p.Bits() - a.p.Bits() })
	for _, r := range rs {
		out = append(out, r.in)
	}
	if r := cfg.Redirect; r != nil {
		if id, ok := up(r.Via); ok {
			var not []netip.Prefix
			for _, e := range servers(cfg, vpns) {
				not = append(not, hostPrefixes([]netip.Addr{e.Addr})...)
			}
			not = append(not, r.LAN...)
			for _, a := range st.Addrs {
				not = append(not, a.Prefix.Masked(), netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Addr().BitLen()))
			}
			for _, fam := range []int{4, 6} {
				want := fam == 4 && id.Has4 || fam == 6 && id.Has6
				if r.FamiliesGiven {
					want = fam == 4 && r.IPv4 || fam == 6 && r.IPv6
				}
				if !want {
					continue
				}
				m := local
				m.Family = fam
				m.NotDst = append(append([]netip.Prefix(nil), not...), specials(fam)...)
				out = append(out, Intent{Why: "redirect via " + r.Via, Match: m, Devs: devs(r.Via)})
			}
		}
	}
	return out
}
