package fib

import "net/netip"

// Matched is the destination prefix of the FIB entry the answer used
// (in Table), whether or not the query asked for fibmatch; ok is false
// when no entry was used (errors, the oif fallback, ...). Callers use it
// to tell which part of a config made that entry.
func (r *Result) Matched() (netip.Prefix, bool) {
	switch {
	case r.ref.at == nil:
		return netip.Prefix{}, false
	case r.ref.t4 != nil:
		return r.ref.t4.prefix(r.ref.node), true
	case r.ref.t6 != nil:
		return r.ref.t6.nodes[r.ref.node].pfx, true
	}
	return netip.Prefix{}, false
}
