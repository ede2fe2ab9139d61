package kernel

import (
	"net/netip"
	"slices"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// RouteScope limits what an observation reads of the routes tunroute does
// not own, so that planning costs what the config costs, not what the
// host's tables hold (a full BGP table in main is a million routes of
// which a plan needs a handful). tunroute's own routes are always read
// whole, in every table.
//
// Of the routes of others, only tables in Tables are kept. A table with at
// most Whole such routes is kept whole; of a bigger one only the routes a
// plan can depend on are kept: those whose destination covers one of
// Points (the default route covers them all), and the kernel's own routes
// (proto kernel: the connected prefixes of the addresses, one per
// address). The kernel cannot filter a dump by destination, so a big
// table of the scope still streams through once; what is dropped is not
// decoded. With main in the scope (plans, explain) that is one dump of
// every table per family (dumpScoped); without, a dump the kernel filters
// by protocol for tunroute's routes and one it filters by table for each
// table of the scope, so that a big table outside the scope costs only
// the kernel's walk.
type RouteScope struct {
	Tables []uint32
	// RuleTables adds every table a rule looks up, and main, local and
	// default: what a route lookup can reach (explain).
	RuleTables bool
	// AddrPrefixes adds the prefix of every address of the namespace to
	// Points: the routes to the connected networks, which an identity's
	// table copies.
	AddrPrefixes bool
	// Whole is the largest table kept whole; 0 means DefaultWhole.
	Whole int
	// Family, if set (unix.AF_INET, AF_INET6), reads only that family's
	// routes: a route query of one family looks up no table of the other.
	Family uint8
	// Points are the destinations a plan looks at: its route keys, and
	// the addresses whose route it asks of the main table (servers, LAN
	// prefixes, gateways, the default).
	Points []netip.Prefix
}

// DefaultWhole is the size up to which a table is kept whole.
const DefaultWhole = 4096

// protoKernel is the protocol of the routes the kernel makes for
// addresses.
const protoKernel state.Protocol = unix.RTPROT_KERNEL

func (s *RouteScope) whole() int {
	if s.Whole <= 0 {
		return DefaultWhole
	}
	return s.Whole
}

// HasTable reports whether the scope reads table t.
func (s *RouteScope) HasTable(t uint32) bool { return slices.Contains(s.Tables, t) }

// Covers reports whether a route of a big table with this destination
// and protocol is kept: it contains (or is) one of the points, or it is
// one of the kernel's connected routes.
func (s *RouteScope) Covers(dst netip.Prefix, proto state.Protocol) bool {
	if proto == protoKernel {
		return true
	}
	for _, p := range s.Points {
		if p.Addr().Is4() == dst.Addr().Is4() && dst.Bits() <= p.Bits() && dst.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Resolve returns s with the tables of rules and the prefixes of
// addresses added, when s asks for them.
func (s *RouteScope) Resolve(rules []state.Rule, addrs []state.Addr) *RouteScope {
	if !s.RuleTables && !s.AddrPrefixes {
		return s
	}
	w := *s
	w.Tables = slices.Clone(s.Tables)
	w.Points = slices.Clone(s.Points)
	if s.AddrPrefixes {
		for _, a := range addrs {
			if p := a.Prefix.Masked(); !w.Covers(p, 0) {
				w.Points = append(w.Points, p)
			}
		}
	}
	if !s.RuleTables {
		return &w
	}
	add := func(t uint32) {
		if !w.HasTable(t) {
			w.Tables = append(w.Tables, t)
		}
	}
	add(state.TableLocal)
	add(state.TableMain)
	add(state.TableDefault)
	for _, r := range rules {
		if r.Action == state.ActionLookup && r.Table != 0 {
			add(r.Table)
		}
	}
	return &w
}

// FilterState drops from a complete observation the routes a read with
// this scope does not keep: the same selection the kernel read makes, for
// hosts that read everything (tests, snapshots).
func (s *RouteScope) FilterState(st *state.State) {
	st.Routes = s.Resolve(st.Rules, st.Addrs).Filter(st.Routes)
}

// Filter returns the routes of a complete observation that a read with
// this scope keeps, in their order (without RuleTables: see FilterState).
func (s *RouteScope) Filter(routes []state.Route) []state.Route {
	count := map[uint32]int{}
	for i := range routes {
		if !routes[i].Owned() {
			count[routes[i].Table]++
		}
	}
	var out []state.Route
	for i := range routes {
		r := &routes[i]
		switch {
		case r.Owned():
		case !s.HasTable(r.Table):
			continue
		case count[r.Table] > s.whole() && !s.Covers(r.Dst, r.Protocol):
			continue
		}
		out = append(out, *r)
	}
	return out
}

// dumpForeignScoped appends the routes of one family and table that
// tunroute does not own, kept as s says: the kernel sends only that
// table; a table that turns out bigger than s.Whole is filtered while it
// streams, without decoding what is dropped.
func (c *conn) dumpForeignScoped(out []state.Route, af uint8, table uint32, s *RouteScope, d *devNames, nhs setNexthops) ([]state.Route, error) {
	var kept []state.Route
	var pool nhPool
	err := retryDump(func() error {
		kept, pool = kept[:0], nhPool{}
		foreign, big := 0, false
		seq := c.routeDumpRequest(af, table, 0)
		err := c.dump(seq, func(m message) error {
			if m.typ != unix.RTM_NEWROUTE || len(m.data) < unix.SizeofRtMsg {
				return nil
			}
			proto := state.Protocol(m.data[5])
			if proto == state.Proto || m.data[0] != af || ne.Uint32(m.data[8:])&unix.RTM_F_CLONED != 0 {
				return nil
			}
			if !c.strict && routeTable(m.data) != table {
				return nil
			}
			foreign++
			if !big && foreign > s.whole() {
				big = true
				kept = slices.DeleteFunc(kept, func(r state.Route) bool { return !s.Covers(r.Dst, r.Protocol) })
			}
			if big && !s.Covers(routeDst(m.data), proto) {
				return nil
			}
			var r state.Route
			if decodePlainRoute(m.data, &r, d, &pool, nhs) {
				kept = append(kept, r)
			}
			return nil
		})
		if e, ok := err.(*Error); ok && e.Errno == unix.ENOENT {
			return nil // no such table: no routes
		}
		return err
	})
	return append(out, kept...), err
}

// routeTable is an RTM_NEWROUTE's table (RTA_TABLE when present).
func routeTable(data []byte) uint32 {
	t := uint32(data[4])
	a := attrs{b: data[unix.SizeofRtMsg:]}
	for a.next() {
		if a.typ == unix.RTA_TABLE {
			return a.u32()
		}
	}
	return t
}

// routeDst is an RTM_NEWROUTE's destination, read without decoding the
// rest.
func routeDst(data []byte) netip.Prefix {
	var dst netip.Addr
	a := attrs{b: data[unix.SizeofRtMsg:]}
	for a.next() {
		if a.typ == unix.RTA_DST {
			dst = ipAddr(a.val)
			break
		}
	}
	if !dst.IsValid() {
		dst = zeroAddr(data[0])
	}
	return netip.PrefixFrom(dst, int(data[1]))
}

// dumpScoped reads one family's routes in a single dump of every table:
// tunroute's own (into g when compacting, else out), and of the others
// those s keeps. One pass through the kernel's tables instead of a
// protocol-filtered walk of all of them and a dump of each table of the
// scope: the walk alone costs as much as a third of a full dump when
// main holds a million routes.
//
// The tables found too big to keep whole are added to bigTables (if not
// nil).
func (c *conn) dumpScoped(out []state.Route, g *routeGroups, af uint8, s *RouteScope, d *devNames, nhs setNexthops, bigTables map[uint32]bool) ([]state.Route, error) {
	mark := len(out)
	err := retryDump(func() error {
		out = out[:mark]
		if g != nil {
			g.reset()
		}
		var pool nhPool
		scratch := make([]state.Nexthop, 64)
		foreign := map[uint32]int{}
		big := map[uint32]bool{}
		seq := c.routeDumpRequest(af, 0, 0)
		err := c.dump(seq, func(m message) error {
			if m.typ != unix.RTM_NEWROUTE || len(m.data) < unix.SizeofRtMsg || m.data[0] != af ||
				ne.Uint32(m.data[8:])&unix.RTM_F_CLONED != 0 {
				return nil
			}
			proto := state.Protocol(m.data[5])
			if proto == state.Proto {
				if g != nil && g.last != nil {
					if dst, ok := sameShape(g.lastMsg, m.data); ok {
						g.last.dsts.add(dst)
						return nil
					}
				}
				var r state.Route
				sp := nhPool{buf: scratch}
				if !decodePlainRoute(m.data, &r, d, &sp, nhs) {
					return nil
				}
				if g != nil && g.add(&r) {
					g.lastMsg = append(g.lastMsg[:0], m.data...)
					return nil
				}
				if len(r.Nexthops) > 0 {
					r.Nexthops = append(pool.take(len(r.Nexthops))[:0], r.Nexthops...)
				}
				out = append(out, r)
				return nil
			}
			table := routeTable(m.data)
			if !s.HasTable(table) {
				return nil
			}
			foreign[table]++
			if foreign[table] > s.whole() {
				big[table] = true
				if !s.Covers(routeDst(m.data), proto) {
					return nil
				}
			}
			var r state.Route
			if decodePlainRoute(m.data, &r, d, &pool, nhs) {
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for t := range big {
			if bigTables != nil {
				bigTables[t] = true
			}
		}
		// The routes of a big table read before it showed it was big.
		if len(big) > 0 {
			kept := slices.DeleteFunc(out[mark:], func(r state.Route) bool {
				return !r.Owned() && big[r.Table] && !s.Covers(r.Dst, r.Protocol)
			})
			out = out[:mark+len(kept)]
		}
		return nil
	})
	return out, err
}
