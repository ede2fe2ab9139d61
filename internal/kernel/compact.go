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
	// snapshots) expect plain Routes and should use Observe.
	CompactRoutes bool
	// CompactMin is the smallest group kept as a set; 0 means 64.
	CompactMin int
}

const defaultCompactMin = 64

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
	dsts []netip.Prefix
}

// routeGroups gathers owned routes by template during a dump.
type routeGroups struct {
	last    *routeGroup
	lastKey tmplKey
	byKey   map[tmplKey]*routeGroup
	list    []*routeGroup
}

func (g *routeGroups) reset() {
	g.last, g.byKey, g.list = nil, map[tmplKey]*routeGroup{}, nil
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
	g.last.dsts = append(g.last.dsts, r.Dst)
	return true
}

// dumpRoutesCompact dumps one family's routes: tunroute's own go into g,
// where they fit, the rest are appended to out.
func (c *conn) dumpRoutesCompact(out []state.Route, g *routeGroups, af uint8, d *devNames, nhs setNexthops) ([]state.Route, error) {
	mark := len(out)
	err := retryDump(func() error {
		out = out[:mark]
		g.reset()
		var pool nhPool
		scratch := make([]state.Nexthop, 64)
		var r state.Route
		seq := c.nextSeq()
		c.enc.reset()
		off := c.enc.begin(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
		h := c.enc.zeros(unix.SizeofRtMsg)
		h[0] = af
		c.enc.end(off)
		return c.dump(seq, func(m message) error {
			if m.typ != unix.RTM_NEWROUTE {
				return nil
			}
			sp := nhPool{buf: scratch}
			if !decodeRoute(m.data, &r, d, &sp) || r.Flags&unix.RTM_F_CLONED != 0 {
				return nil
			}
			nhs.translate(&r, d, &sp)
			if r.Owned() && g.add(&r) {
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
		if len(grp.dsts) >= min {
			sets = append(sets, state.RouteSet{Template: grp.tmpl, Dsts: grp.dsts})
			continue
		}
		for _, dst := range grp.dsts {
			r := grp.tmpl
			r.Dst = dst
			r.Nexthops = append([]state.Nexthop(nil), grp.tmpl.Nexthops...)
			routes = append(routes, r)
		}
	}
	g.reset()
	return sets, routes
}
