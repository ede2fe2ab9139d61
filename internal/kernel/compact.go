package kernel

import (
	"fmt"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// ObserveOptions say how ObserveWith reads a namespace.
type ObserveOptions struct {
	// CompactRoutes keeps tunroute's own routes (protocol state.Proto)
	// that are the same but for their destination as one state.RouteSet
	// in State.RouteSets (32 bytes a route) instead of a state.Route each
	// in State.Routes (about 224 bytes and a nexthop). A group becomes a
	// set once it has CompactMin routes; smaller groups, multipath routes
	// and routes that expire stay in Routes. The planner (plan.Diff)
	// takes either form; other readers of a State (fib, explain,
	// snapshots) expect plain Routes and should use Observe. A compact
	// read also leaves out the per-device sysctls, which no plan sets.
	CompactRoutes bool
	// CompactMin is the smallest group kept as a set; 0 means 64.
	CompactMin int
	// Cache, if set, serves and keeps the routes of a read whose scope
	// has main (RouteCache): a daemon's plans.
	Cache *RouteCache
	// Routes, if set, limits the routes of others that are read
	// (RouteScope); nil reads every route of every table.
	Routes *RouteScope
	// leftOut, if set (ObserveLeavingBig), makes a read with Routes read
	// each table of the scope whole or leave it out, and receives those
	// left out.
	leftOut *LeftOut
}

const defaultCompactMin = 64

// compactMin is CompactMin or its default.
func (o *ObserveOptions) compactMin() int {
	if o.CompactMin <= 0 {
		return defaultCompactMin
	}
	return o.CompactMin
}

// ObserveWith is Observe with options; ObserveWith(ObserveOptions{}) is
// Observe().
func (h *Handle) ObserveWith(o ObserveOptions) (*state.State, error) {
	c, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	s, err := h.observe(c, o)
	if err != nil {
		return nil, fmt.Errorf("observe %s: %w", h.describe(), err)
	}
	return s, nil
}

// tmplKey is everything of a route but its destination, for grouping
// routes into sets; only routes with at most one nexthop have one.
type tmplKey struct {
	v6      bool
	table   uint32
	typ     state.RouteType
	src     netip.Prefix
	tos     uint8
	metric  uint32
	proto   state.Protocol
	scope   state.Scope
	prefSrc netip.Addr
	flags   state.NexthopFlags
	pref    uint8
	nhid    uint32
	mtu     uint32
	hasNH   bool
	gw      netip.Addr
	index   int
	weight  int
	nhFlags state.NexthopFlags
}

// keyOfTemplate returns r's template key, or false when r is not one to
// keep in a set.
func keyOfTemplate(r *state.Route) (tmplKey, bool) {
	if len(r.Nexthops) > 1 || r.Expires != 0 {
		return tmplKey{}, false
	}
	k := tmplKey{v6: r.Is6(), table: r.Table, typ: r.Type, src: r.Src, tos: r.TOS, metric: r.Metric,
		proto: r.Protocol, scope: r.Scope, prefSrc: r.PrefSrc, flags: r.Flags, pref: r.Pref, nhid: r.NHID, mtu: r.MTU}
	if len(r.Nexthops) == 1 {
		nh := &r.Nexthops[0]
		k.hasNH, k.gw, k.index, k.weight, k.nhFlags = true, nh.Gateway, nh.Index, nh.Weight, nh.Flags
	}
	return k, true
}

type routeGroup struct {
	tmpl state.Route
	dsts prefixList
}

// prefixList collects prefixes in chunks, so that a million of them are
// not copied over and over while the list grows, and then hands them out
// in one slice of the right size.
type prefixList struct {
	full [][]netip.Prefix
	cur  []netip.Prefix
	n    int
}

const prefixChunk = 1 << 16

func (l *prefixList) add(p netip.Prefix) {
	if len(l.cur) == cap(l.cur) {
		if len(l.cur) > 0 {
			l.full = append(l.full, l.cur)
		}
		l.cur = make([]netip.Prefix, 0, min(prefixChunk, max(64, 2*l.n)))
	}
	l.cur = append(l.cur, p)
	l.n++
}

func (l *prefixList) slice() []netip.Prefix {
	out := make([]netip.Prefix, 0, l.n)
	for _, c := range l.full {
		out = append(out, c...)
	}
	return append(out, l.cur...)
}

// routeGroups gathers owned routes by template during a dump.
type routeGroups struct {
	last    *routeGroup
	lastKey tmplKey
	// lastMsg is the message of the route last added to last: a
	// message that differs from it only in the destination goes to the
	// same group without being decoded (sameShape).
	lastMsg []byte
	byKey   map[tmplKey]*routeGroup
	list    []*routeGroup
}

func (g *routeGroups) reset() {
	g.last, g.byKey, g.list, g.lastMsg = nil, map[tmplKey]*routeGroup{}, nil, g.lastMsg[:0]
}

// add puts r in its group and reports whether it could. r's nexthops may
// be scratch memory: a new group copies them.
func (g *routeGroups) add(r *state.Route) bool {
	k, ok := keyOfTemplate(r)
	if !ok {
		return false
	}
	if g.last == nil || k != g.lastKey {
		grp := g.byKey[k]
		if grp == nil {
			grp = &routeGroup{tmpl: *r}
			grp.tmpl.Dst = netip.Prefix{}
			grp.tmpl.Nexthops = append([]state.Nexthop(nil), r.Nexthops...)
			g.byKey[k] = grp
			g.list = append(g.list, grp)
		}
		g.last, g.lastKey = grp, k
	}
	g.last.dsts.add(r.Dst)
	return true
}

// sameShape reports whether the RTM_NEWROUTE in cur is the one in prev
// but for its destination, and returns cur's destination: the same
// header (but rtm_dst_len) and the same attributes in the same order and
// with the same values, but RTA_DST and the IPv6 statistics in
// RTA_CACHEINFO (a route that expires is never the same).
func sameShape(prev, cur []byte) (netip.Prefix, bool) {
	if len(prev) != len(cur) || len(cur) < unix.SizeofRtMsg || prev[0] != cur[0] || string(prev[2:unix.SizeofRtMsg]) != string(cur[2:unix.SizeofRtMsg]) {
		return netip.Prefix{}, false
	}
	var dst netip.Addr
	pa, ca := prev[unix.SizeofRtMsg:], cur[unix.SizeofRtMsg:]
	for len(ca) >= 4 {
		l := int(ne.Uint16(ca))
		if l < 4 || l > len(ca) || ne.Uint32(pa) != ne.Uint32(ca) {
			return netip.Prefix{}, false
		}
		switch ne.Uint16(ca[2:]) & nlaTypeMask {
		case unix.RTA_DST:
			dst = ipAddr(ca[4:l])
		case unix.RTA_CACHEINFO:
			if l < 4+sizeofRtaCacheinfo || ne.Uint32(ca[4+8:]) != 0 {
				return netip.Prefix{}, false
			}
		default:
			if string(pa[4:l]) != string(ca[4:l]) {
				return netip.Prefix{}, false
			}
		}
		n := min(align4(l), len(ca))
		pa, ca = pa[n:], ca[n:]
	}
	if !dst.IsValid() {
		dst = zeroAddr(cur[0])
	}
	p := netip.PrefixFrom(dst, int(cur[1]))
	return p, p.IsValid()
}

// dumpRoutesCompact dumps one family's routes: tunroute's own go into g,
// where they fit, the rest are appended to out. onlyOwn asks the kernel
// for tunroute's routes only.
func (c *conn) dumpRoutesCompact(out []state.Route, g *routeGroups, af uint8, d *devNames, nhs setNexthops, onlyOwn bool) ([]state.Route, error) {
	mark := len(out)
	err := retryDump(func() error {
		out = out[:mark]
		g.reset()
		var pool nhPool
		scratch := make([]state.Nexthop, 64)
		var r state.Route
		var proto state.Protocol
		if onlyOwn {
			proto = state.Proto
		}
		seq := c.routeDumpRequest(af, 0, proto)
		return c.dump(seq, func(m message) error {
			if m.typ != unix.RTM_NEWROUTE {
				return nil
			}
			if onlyOwn && (len(m.data) <= 5 || state.Protocol(m.data[5]) != state.Proto) {
				return nil
			}
			if g.last != nil && len(m.data) > 5 && state.Protocol(m.data[5]) == state.Proto {
				if dst, ok := sameShape(g.lastMsg, m.data); ok {
					g.last.dsts.add(dst)
					return nil
				}
			}
			sp := nhPool{buf: scratch}
			if !decodeRoute(m.data, &r, d, &sp) || r.Flags&unix.RTM_F_CLONED != 0 {
				return nil
			}
			nhs.translate(&r, d, &sp)
			if r.Owned() && g.add(&r) {
				g.lastMsg = append(g.lastMsg[:0], m.data...)
				return nil
			}
			if len(r.Nexthops) > 0 {
				nhs := pool.take(len(r.Nexthops))
				copy(nhs, r.Nexthops)
				r.Nexthops = nhs
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// finish turns the groups of at least min routes into sets and returns
// the routes of the smaller ones to routes.
func (g *routeGroups) finish(sets []state.RouteSet, routes []state.Route, min int) ([]state.RouteSet, []state.Route) {
	for _, grp := range g.list {
		if grp.dsts.n >= min {
			sets = append(sets, state.RouteSet{Template: grp.tmpl, Dsts: grp.dsts.slice()})
			continue
		}
		for _, dst := range grp.dsts.slice() {
			r := grp.tmpl
			r.Dst = dst
			r.Nexthops = append([]state.Nexthop(nil), grp.tmpl.Nexthops...)
			routes = append(routes, r)
		}
	}
	g.reset()
	return sets, routes
}
