package compile

import (
	"net/netip"
	"sort"

	"github.com/tunroute/tunroute/internal/state"
)

// What the kill switch lets a link have outside the tunnels, and what it
// never lets out: the link's own plumbing (neighbour discovery, MLD,
// DHCP) only on the link, and no packet that asks a router to send it on.

// rerouteRequests drop, on a non-tunnel device, packets that ask a router
// to send them somewhere else than their destination address: IPv4 with
// options (loose or strict source route, record route, timestamps:
// a router honouring a source route forwards a packet addressed to an
// allowed LAN address on to the Internet) and IPv6 with a routing header
// (type 0, segment routing). IPv4 multicast keeps its options: IGMP
// carries router alert, and multicast is never source-routed.
func rerouteRequests() []state.FwRule {
	return []state.FwRule{
		{Comment: "IPv4 options (source route) outside a tunnel", Family: 4, IPOptions: true,
			NotDaddr: []netip.Prefix{netip.MustParsePrefix("224.0.0.0/4")}, Counter: true, Verdict: "drop"},
		{Comment: "IPv6 routing header outside a tunnel", Family: 6, RoutingHeader: true, Counter: true, Verdict: "drop"},
	}
}

var (
	linkLocal6   = netip.MustParsePrefix("fe80::/10")
	unspecified6 = netip.MustParsePrefix("::/128")
	linkScope6   = netip.MustParsePrefix("ff02::/16")
	multicast6   = netip.MustParsePrefix("ff00::/8")
)

// linkLocalICMPv6 allows the ICMPv6 a link needs, and only on the link:
// neighbour discovery (router and neighbour solicitation, neighbour
// advertisement) with hop limit 255, to a link-local, link-scope
// multicast or on-link address, from a link-local address, the
// unspecified address (duplicate address detection) or an address of the
// outgoing device; MLD reports and done (v1 and v2) with hop limit 1 to a
// multicast address from a link-local or the unspecified address. A hop
// limit of 1 is never forwarded; the destinations keep ND off the
// routers' forwarding path. Redirects and router advertisements are a
// router's, not a host's.
func linkLocalICMPv6(onLink []netip.Prefix) []state.FwRule {
	nd := []uint8{133, 135, 136}
	to := append([]netip.Prefix{linkLocal6, linkScope6}, familyOf(onLink, true)...)
	return []state.FwRule{
		{Comment: "IPv6 neighbour discovery on the link", Family: 6, Proto: 58, ICMPv6Types: nd, HopLimit: 255,
			Saddr: []netip.Prefix{linkLocal6, unspecified6}, Daddr: to, Verdict: "accept"},
		{Comment: "IPv6 neighbour discovery on the link, from the device's address", Family: 6, Proto: 58, ICMPv6Types: nd,
			HopLimit: 255, SaddrLocalOIF: true, Daddr: to, Verdict: "accept"},
		{Comment: "MLD reports on the link", Family: 6, Proto: 58, ICMPv6Types: []uint8{131, 132, 143}, HopLimit: 1,
			Saddr: []netip.Prefix{linkLocal6, unspecified6}, Daddr: []netip.Prefix{multicast6}, Verdict: "accept"},
	}
}

// dhcpRules allow DHCP requests (client port to server port) to the
// broadcast address or an on-link address, and DHCPv6 to the servers'
// link-scope multicast group, a link-local or an on-link address. A
// renewal to a server beyond a relay is dropped; the client falls back
// to broadcasting (rebinding), which is allowed.
func dhcpRules(onLink []netip.Prefix) []state.FwRule {
	to4 := append([]netip.Prefix{netip.MustParsePrefix("255.255.255.255/32")}, familyOf(onLink, false)...)
	to6 := append([]netip.Prefix{netip.MustParsePrefix("ff02::1:2/128"), linkLocal6}, familyOf(onLink, true)...)
	return []state.FwRule{
		{Comment: "DHCP", Family: 4, Proto: 17, Daddr: to4, SPorts: []state.PortRange{{Start: 68, End: 68}}, DPorts: []state.PortRange{{Start: 67, End: 67}}, Verdict: "accept"},
		{Comment: "DHCPv6", Family: 6, Proto: 17, Daddr: to6, SPorts: []state.PortRange{{Start: 546, End: 546}}, DPorts: []state.PortRange{{Start: 547, End: 547}}, Verdict: "accept"},
	}
}

// onLinkPrefixes are the prefixes of the addresses on the non-tunnel
// devices (what the kernel reaches without a router), as observed when
// the config is applied; a renumbered link is taken in by the next apply.
func (c *compiler) onLinkPrefixes(tunnels []string) []netip.Prefix {
	isTunnel := map[string]bool{"lo": true}
	for _, t := range tunnels {
		isTunnel[t] = true
	}
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, a := range c.f.s.Addrs {
		if isTunnel[a.Dev] || a.Owned() || a.Scope != state.ScopeUniverse || a.Prefix.Bits() == a.Prefix.Addr().BitLen() {
			continue
		}
		if l := c.f.links[a.Dev]; l == nil || l.Loopback || l.PointToPoint {
			continue
		}
		p := a.Prefix.Masked()
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Addr() != out[j].Addr() {
			return out[i].Addr().Less(out[j].Addr())
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}
