package compile

import (
	"net/netip"
	"sort"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// ICMPv6 messages IPv6 needs on any link: router solicitation, neighbour
// solicitation and advertisement, MLDv2 reports. (The pipes' input guard
// accepts them by type; what leaves a non-tunnel device is judged by
// linkLocalICMPv6.)
var ndTypes = []uint8{133, 135, 136, 143}

// killswitch compiles the security policy: traffic may leave by a
// non-tunnel interface only if the policy allows it in clear; everything
// else is counted and dropped. The table is not tied to any process, so
// it stays when the VPN daemon or tunroute dies.
//
// The decision for what the host sends is taken in postrouting, where
// the output device is final: another tool's route-type output chain at
// a later priority, or its rule for a mark it sets, may still re-route a
// packet after any output-hook chain accepted it for the tunnel. The
// forward chain guards forwarded traffic; its output device is already
// final there (no re-route after the forward hook).
func (c *compiler) killswitch(k *config.KillSwitch) error {
	tunnels := c.tunnelDevices(k)
	onLink := c.onLinkPrefixes(tunnels)
	var clear []state.FwRule // what may leave in clear, both chains
	for _, a := range k.Allow {
		for _, v6 := range []bool{false, true} {
			to, from := familyOf(a.To, v6), familyOf(a.From, v6)
			if (len(a.To) > 0 && len(to) == 0) || (len(a.From) > 0 && len(from) == 0) {
				continue
			}
			clear = append(clear, state.FwRule{Comment: "allowed in clear", Family: fam(v6), Daddr: to, Saddr: from,
				Proto: a.Proto, DPorts: a.Ports, SPorts: a.SPorts, Verdict: "accept"})
		}
	}
	clear = append(clear, c.selectedClear(tunnels)...)
	clear = append(clear, c.groupClear()...)
	clear = append(clear, c.probeRules()...)
	seen := map[string]bool{}
	for _, e := range c.serverEndpoints() {
		for _, r := range serverRules(e) {
			// tinc's servers come from the config and the hook, the
			// latter without a transport: the same rules twice.
			if !seen[r.String()] {
				seen[r.String()] = true
				clear = append(clear, r)
			}
		}
	}
	var dhcp []state.FwRule
	if k.DHCP {
		dhcp = dhcpRules(onLink)
	}
	drop := state.FwRule{Comment: "kill switch: not in a tunnel, not allowed in clear", Counter: true, Verdict: "drop"}

	if len(tunnels) == 0 {
		c.note("killswitch: no tunnel is up (no identity with a vpn, no redirect, no killswitch.tunnels): everything not allowed in clear is dropped")
	}
	fw := c.firewall()
	post := fw.chain(ChainKillPost, "filter", "postrouting", 0)
	if !k.Forward {
		post.Rules = append(post.Rules, state.FwRule{Comment: "forwarded: killswitch.forward is off", Forwarded: true, Verdict: "accept"})
	}
	post.Rules = append(post.Rules, state.FwRule{Comment: "loopback", OIF: []string{"lo"}, Verdict: "accept"})
	post.Rules = append(post.Rules, c.dnsRules(k)...)
	if len(tunnels) > 0 {
		post.Rules = append(post.Rules, state.FwRule{Comment: "in a tunnel", OIF: tunnels, Verdict: "accept"})
	}
	post.Rules = append(post.Rules, rerouteRequests()...)
	post.Rules = append(post.Rules, clear...)
	post.Rules = append(post.Rules, BGPSessionRules(c.cfg.BGP)...)
	post.Rules = append(post.Rules, dhcp...)
	post.Rules = append(post.Rules, linkLocalICMPv6(onLink)...)
	post.Rules = append(post.Rules, drop)
	if k.Forward {
		fwd := fw.chain(ChainKillForward, "filter", "forward", 0)
		fwd.Rules = append(fwd.Rules, c.dnsRules(k)...)
		if len(tunnels) > 0 {
			fwd.Rules = append(fwd.Rules, state.FwRule{Comment: "in a tunnel", OIF: tunnels, Verdict: "accept"})
		}
		fwd.Rules = append(fwd.Rules, rerouteRequests()...)
		for _, r := range clear {
			// A forwarded packet has no local socket: a uid or cgroup
			// (the kernel refuses `socket cgroupv2` in this hook) or the
			// mark of one never matches it.
			if r.UID == nil && r.Cgroup == "" && r.MarkMask == 0 {
				fwd.Rules = append(fwd.Rules, r)
			}
		}
		fwd.Rules = append(fwd.Rules, drop)
	}
	return nil
}

// serverRules allow a VPN server's real address: with the port and
// transport the hook or config gave, exactly those; a port without a
// transport (tinc reports none) is UDP and TCP on it; no port, any.
func serverRules(e facts.Endpoint) []state.FwRule {
	r := state.FwRule{Comment: "VPN server", Family: family(e.Addr),
		Daddr: []netip.Prefix{netip.PrefixFrom(e.Addr, e.Addr.BitLen())}, Verdict: "accept"}
	if e.Proto == "esp" {
		r.Proto = 50 // IPsec's ESP: no ports
		return []state.FwRule{r}
	}
	if e.Port == 0 {
		return []state.FwRule{r}
	}
	r.DPorts = []state.PortRange{{Start: e.Port, End: e.Port}}
	protos := []string{"udp", "tcp"}
	if e.Proto != "" {
		protos = []string{e.Proto}
	}
	var out []state.FwRule
	for _, p := range protos {
		x := r
		x.Proto = map[string]uint8{"udp": 17, "tcp": 6}[p]
		out = append(out, x)
	}
	return out
}

// tunnelDevices are the devices of the tunnel identities that are up.
func (c *compiler) tunnelDevices(k *config.KillSwitch) []string {
	names := k.Tunnels
	if len(names) == 0 {
		for _, ci := range c.cfg.Identities {
			if ci.VPN != "" {
				names = append(names, ci.Name)
			}
		}
		if c.cfg.Redirect != nil {
			names = append(names, c.cfg.Redirect.Via)
		}
	}
	var devs firstSeen[string]
	if len(k.Tunnels) == 0 {
		wg, _ := c.routedWireGuard()
		devs.add(wg...)
	}
	var expanded []string
	for _, n := range names {
		if g := c.cfg.Group(n); g != nil {
			// A group's tunnels, never its clear members (which carry
			// traffic only by `fallback: clear`, allowed by groupClear).
			for _, m := range g.Members() {
				if c.cfg.IsTunnel(m) {
					expanded = append(expanded, m)
				}
			}
			continue
		}
		expanded = append(expanded, n)
	}
	for _, n := range expanded {
		if id := c.ids[n]; !id.Down {
			devs.add(id.Device)
		}
	}
	sort.Strings(devs.list)
	return devs.list
}

// serverEndpoints are the VPN servers' real addresses: those the hooks
// reported, with their ports, and the redirect's servers (any port).
func (c *compiler) serverEndpoints() []facts.Endpoint {
	var out firstSeen[facts.Endpoint]
	for _, v := range c.cfg.VPNs {
		for _, e := range v.Servers {
			if v.Type == "strongswan" && e.Port == 0 && e.Proto == "" {
				// An IPsec peer: IKE, NAT-T and ESP, nothing else.
				out.add(facts.Endpoint{Addr: e.Addr, Port: 500, Proto: "udp"})
				out.add(facts.Endpoint{Addr: e.Addr, Port: 4500, Proto: "udp"})
				out.add(facts.Endpoint{Addr: e.Addr, Proto: "esp"})
				continue
			}
			out.add(facts.Endpoint{Addr: e.Addr, Port: e.Port, Proto: e.Proto})
		}
		if vf := c.vpns[v.Name]; vf != nil {
			out.add(vf.Servers...)
		}
	}
	if c.cfg.Redirect != nil {
		for _, s := range c.cfg.Redirect.Servers {
			out.add(facts.Endpoint{Addr: s})
		}
	}
	_, wg := c.routedWireGuard()
	out.add(wg...)
	return out.list
}

// firstSeen holds values in the order they first came, each once.
type firstSeen[T comparable] struct {
	seen map[T]bool
	list []T
}

func (s *firstSeen[T]) add(vs ...T) {
	for _, v := range vs {
		if s.seen[v] {
			continue
		}
		if s.seen == nil {
			s.seen = map[T]bool{}
		}
		s.seen[v] = true
		s.list = append(s.list, v)
	}
}

// dnsRules drop DNS to any resolver but the declared ones, whatever the
// interface: a query to the ISP's resolver through the tunnel still
// tells the ISP's resolver what you look up.
func (c *compiler) dnsRules(k *config.KillSwitch) []state.FwRule {
	if !k.DNSGiven {
		return nil
	}
	resolvers := append([]netip.Addr(nil), k.DNS...)
	if k.DNSFromVPN {
		for _, v := range c.cfg.VPNs {
			if vf := c.vpns[v.Name]; vf != nil {
				resolvers = append(resolvers, vf.DNS...)
			}
		}
	}
	var rules []state.FwRule
	for _, v6 := range []bool{false, true} {
		var allowed []netip.Prefix
		for _, r := range resolvers {
			if r.Is6() == v6 {
				allowed = append(allowed, netip.PrefixFrom(r, r.BitLen()))
			}
		}
		for _, proto := range []uint8{17, 6} {
			rules = append(rules, state.FwRule{Comment: "DNS only to the declared resolvers", Family: fam(v6),
				Proto: proto, DPorts: []state.PortRange{{Start: 53, End: 53}}, NotDaddr: allowed, Counter: true, Verdict: "drop"})
		}
	}
	return rules
}

func anyIn(devs []string, set map[string]bool) bool {
	for _, d := range devs {
		if set[d] {
			return true
		}
	}
	return false
}

// selectedClear allows what a selector deliberately sends around the
// tunnels (port selectors: "ssh around it"): the selector is the policy that
// says this traffic may go in clear, by the identity's device.
func (c *compiler) selectedClear(tunnels []string) []state.FwRule {
	isTunnel := map[string]bool{}
	for _, t := range tunnels {
		isTunnel[t] = true
	}
	var out []state.FwRule
	for i, s := range c.cfg.Select {
		id := c.ids[s.Via]
		if id.Down || anyIn(id.devices(), isTunnel) {
			continue
		}
		for _, v6 := range []bool{false, true} {
			if !id.has(v6) {
				continue
			}
			to, from := familyOf(s.To, v6), familyOf(s.From, v6)
			if (len(s.To) > 0 && len(to) == 0) || (len(s.From) > 0 && len(from) == 0) {
				continue
			}
			r := state.FwRule{Comment: "selected around the tunnel via " + id.Name, Family: fam(v6),
				OIF: id.devices(), Daddr: to, Saddr: from, Proto: s.Proto,
				SPorts: ports(s.SPort), DPorts: ports(s.DPort), UID: s.UID, Verdict: "accept"}
			if s.Cgroup != "" {
				// Postrouting has no `socket cgroupv2`: the selector's
				// traffic carries the mark its route chain set.
				mark, mask, err := c.selectorMark(s, i)
				if err != nil {
					continue // reported by the selector itself
				}
				r.Mark, r.MarkMask = mark, mask
				r.Comment += " (cgroup " + s.Cgroup + ")"
			}
			if s.IIF != "" {
				r.IIF = []string{s.IIF}
			}
			out = append(out, r)
		}
	}
	return out
}
