package verify

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/nfteval"
	"github.com/tunroute/tunroute/internal/state"
)

// The header fields besides addresses, protocol and ports that the kill
// switch looks at (hop limit, IPv4 options, IPv6 routing header) are
// not dimensions of check's packet space: each class's packets carry
// what the kernel's own sockets put there.
//
//   - No IPv4 options and no IPv6 routing header: a socket sets them only
//     with IP_OPTIONS or IPV6_RTHDR, and a raw socket can forge them.
//     The kill switch drops both outside the tunnels, so a packet that
//     has them fares no better than the same packet without them.
//   - The IPv6 hop limit is 255 for neighbour discovery (ICMPv6 133 to
//     137, as the kernel sends it), 1 to a multicast address (the
//     default multicast hop limit, MLD's too) and 64 otherwise (the
//     default unicast hop limit). A forwarded packet is taken to have
//     arrived with a hop limit above 2 (one never arrives with 255 after
//     being decremented), so 64 too.
//
// hostShape fills these in for p, the packet as the firewall sees it.
func hostShape(p *Packet, np *nfteval.Packet) {
	np.IPOptions, np.RoutingHeader = false, false
	np.HopLimit = 0
	if p.Family != 6 {
		return
	}
	switch {
	case !p.Forwarded() && p.Proto == 58 && p.ICMPType >= 133 && p.ICMPType <= 137:
		np.HopLimit = 255
	case !p.Forwarded() && multicast6.Contains(p.Dst):
		np.HopLimit = 1
	default:
		np.HopLimit = 64
	}
}

var (
	multicast6 = netip.MustParsePrefix("ff00::/8")
	// ndTypes are the ICMPv6 types hostShape sends with hop limit 255.
	ndTypes = []uint8{133, 134, 135, 136, 137}
)

// shapeCuts cut the space where hostShape's hop limit changes, when some
// firewall rule looks at the hop limit: at the neighbour discovery types
// and at IPv6 multicast destinations.
func shapeCuts(states []*state.State) []Match {
	for _, st := range states {
		if st.Firewall == nil {
			continue
		}
		for _, c := range st.Firewall.Chains {
			for _, r := range c.Rules {
				if r.HopLimit != 0 {
					return []Match{
						{Family: 6, Protos: []uint8{58}, ICMP: ndTypes},
						{Family: 6, Dst: []netip.Prefix{multicast6}},
					}
				}
			}
		}
	}
	return nil
}

// srcOnDev reports whether a is one of dev's own addresses: what `fib
// saddr . oif type local` finds.
func srcOnDev(st *state.State, dev string, a netip.Addr) bool {
	if dev == "" || !a.IsValid() {
		return false
	}
	for _, x := range st.Addrs {
		if x.Dev == dev && x.Prefix.Addr() == a {
			return true
		}
	}
	return false
}
