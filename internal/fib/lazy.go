package fib

import "net/netip"

// LookupPoints are the destinations whose routes decide the answer to q:
// the kernel looks a table up for the packet's destination, and for its
// source (the device of a given source address, the reverse-path check
// of an input route), never for anything else. A route that covers
// neither takes no part in the lookup, so a state holding, of each table
// the rules reach, only the routes that cover these (and the kernel's
// connected routes) answers q exactly as the whole state does: explain on
// a live namespace reads that much (kernel.RouteScope) instead of a full
// BGP table.
func LookupPoints(q Query) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range []netip.Addr{q.To, q.From} {
		if a.IsValid() {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}
