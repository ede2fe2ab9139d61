package state

import "net/netip"

// PrefixesOfFamily returns the prefixes of ps of one family: IPv6 when v6,
// else IPv4.
func PrefixesOfFamily(ps []netip.Prefix, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			out = append(out, p)
		}
	}
	return out
}
