package kernel

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// RouteCache keeps, between two reads of a namespace, the routes a scoped
// read (RouteScope with main in it: a plan's read) or a whole compact read
// (the plan of a config with route lists) found, so that a
// long-running reader (tunroute run) does not make the kernel stream a
// full routing table through for every plan: beside a million BGP routes
// that stream is most of a plan's cost, while the few routes the plan
// depends on rarely change.
//
// It stays exact by forgetting, never by guessing: what it holds for a
// namespace and family is dropped as soon as an event of that namespace
// can change it (a route of tunroute's, a route of others that the scope
// keeps, any link, address or nexthop change, lost events), and it is used
// only when that namespace's Watcher has handed over every event the
// kernel had queued before the read (Watcher.Synced). A read that events
// raced with is not kept. Events about routes the scope drops (the rest of
// a BGP feed) leave it alone.
type RouteCache struct {
	mu      sync.Mutex
	entries map[cacheKey]*cachedRoutes
	synced  map[string]func() bool
	// reading counts the reads in progress per namespace; while one is,
	// the events of the namespace are kept in pending, to judge whether
	// the read can be kept.
	reading map[string]int
	pending map[string][]WatchEvent
	// hits and misses count the reads served from the cache and not.
	hits, misses uint64
	// served: a read of the namespace was kept once.
	served map[string]bool
}

// maxPending bounds the events kept during a read; past it, the read is
// not kept.
const maxPending = 1 << 16

type cacheKey struct {
	netns string
	af    uint8
}

type cachedRoutes struct {
	scope   *RouteScope // resolved
	compact bool
	routes  []state.Route
	sets    []state.RouteSet
	// big are the tables of the scope whose routes of others were too
	// many to keep whole: only an event about a route the scope covers
	// changes what is kept of them.
	big map[uint32]bool
	// d and nhs decode the events of tunroute's routes as the read
	// decoded its routes (a link or nexthop change drops the entry).
	d   *devNames
	nhs setNexthops
}

// NewRouteCache returns an empty cache.
func NewRouteCache() *RouteCache {
	return &RouteCache{entries: map[cacheKey]*cachedRoutes{}, synced: map[string]func() bool{},
		reading: map[string]int{}, pending: map[string][]WatchEvent{}, served: map[string]bool{}}
}

// Watch is kernel.Watch for a namespace whose plans' reads the cache
// serves: the watcher tells the cache of every event before sending it,
// and reads use the cache only while the watcher is synced. Call
// Unwatch before closing the watcher.
func (c *RouteCache) Watch(netns string, events chan<- WatchEvent) (*Watcher, error) {
	w, err := watch(netns, events, c)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.synced[netns] = w.Synced
	return w, nil
}

// Unwatch stops using the cache for netns (its watcher is closing).
func (c *RouteCache) Unwatch(netns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.synced, netns)
	for k := range c.entries {
		if k.netns == netns {
			delete(c.entries, k)
		}
	}
}

// Serves reports whether the cache has ever kept a read of netns: its
// plans' reads are of the kind it serves (a scope with main in it).
func (c *RouteCache) Serves(netns string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served[netns]
}

// Holds reports whether the cache holds the routes of both families of
// netns.
func (c *RouteCache) Holds(netns string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[cacheKey{netns, unix.AF_INET}] != nil && c.entries[cacheKey{netns, unix.AF_INET6}] != nil
}

// Stats returns how many reads the cache served and how many it did not.
func (c *RouteCache) Stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// touch drops what ev can change, and keeps ev for the reads in progress.
func (c *RouteCache) touch(ev WatchEvent) {
	if ev.Kind == WatchRule || ev.Kind == WatchFirewall {
		return // read anew by every observation
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading[ev.Netns] > 0 && len(c.pending[ev.Netns]) <= maxPending {
		c.pending[ev.Netns] = append(c.pending[ev.Netns], ev)
	}
	for k, e := range c.entries {
		if k.netns != ev.Netns || !e.affectedBy(k.af, ev) {
			continue
		}
		if changed, ok := e.withOwn(ev); ok {
			c.entries[k] = changed
			continue
		}
		delete(c.entries, k)
	}
}

// withOwn returns e with the change of one of tunroute's routes applied
// (its repairs, its hooks' applies, another program deleting one of them),
// when the change is plain: a route deleted that e holds once, a route
// added under a key e does not hold, a replace of the one route e holds
// under its key. Anything else (a route list's set, a multipath append,
// a key held twice) is not guessed at: ok false, and e is dropped. Entries
// are never changed in place: a reader may be copying the old one.
func (e *cachedRoutes) withOwn(ev WatchEvent) (*cachedRoutes, bool) {
	if ev.Kind != WatchRoute || ev.raw == nil || e.d == nil {
		return nil, false
	}
	var r state.Route
	pool := nhPool{buf: make([]state.Nexthop, 16)}
	if !decodePlainRoute(ev.raw, &r, e.d, &pool, e.nhs) {
		return nil, false
	}
	for i := range e.sets {
		if e.sets[i].Template.Table == r.Table {
			return nil, false
		}
	}
	same := func(match func(o *state.Route) bool) (at, n int) {
		at = -1
		for i := range e.routes {
			if match(&e.routes[i]) {
				at, n = i, n+1
			}
		}
		return at, n
	}
	out := *e
	switch at, n := same(func(o *state.Route) bool { return o.Key() == r.Key() }); {
	case ev.Deleted:
		at, n := same(func(o *state.Route) bool { return o.Owned() && o.Equal(&r) })
		if n != 1 {
			return nil, false
		}
		out.routes = slices.Delete(slices.Clone(e.routes), at, at+1)
	case n == 0:
		out.routes = append(slices.Clone(e.routes), r)
	case n == 1 && ev.replace:
		out.routes = slices.Clone(e.routes)
		out.routes[at] = r
	default:
		return nil, false
	}
	return &out, true
}

// affectedBy: the event can change what a read of family af with e.scope
// keeps.
func (e *cachedRoutes) affectedBy(af uint8, ev WatchEvent) bool {
	if ev.Kind != WatchRoute {
		return true // links, addresses, nexthops, lost events
	}
	if ev.Family != af {
		return false
	}
	if ev.Protocol == state.Proto || e.scope == nil {
		return true // a whole read keeps every route of the family
	}
	if !e.scope.HasTable(ev.Table) {
		return false
	}
	if !e.big[ev.Table] {
		return true // a table kept whole
	}
	return e.scope.Covers(ev.Dst, ev.Protocol)
}

// cacheRead is one read of a namespace's routes of one family through the
// cache: begun before the kernel is asked.
type cacheRead struct {
	c     *RouteCache
	netns string
	mark  int
}

// begin starts a read of netns: the events from now on are kept until
// the read ends.
func (c *RouteCache) begin(netns string) *cacheRead {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading[netns]++
	return &cacheRead{c: c, netns: netns, mark: len(c.pending[netns])}
}

// get returns the cached routes of (netns, af) for scope, if the cache
// has them and the watcher has handed over every event.
func (r *cacheRead) get(af uint8, scope *RouteScope, compact bool) (*cachedRoutes, bool) {
	if r == nil {
		return nil, false
	}
	c := r.c
	c.mu.Lock()
	synced := c.synced[r.netns]
	e := c.entries[cacheKey{r.netns, af}]
	c.mu.Unlock()
	// Synced waits for the watcher's reader, which takes c.mu to touch
	// the cache: not called under c.mu.
	// A plain read (status) is served by a compact one (a plan's) that
	// made no route set: both are then the same routes.
	ok := e != nil && synced != nil && (e.compact == compact || len(e.sets) == 0) && e.scope.keepsAll(scope) && synced()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok && c.entries[cacheKey{r.netns, af}] == e { // not touched meanwhile
		c.hits++
		return e, true
	}
	c.misses++
	return nil, false
}

// put keeps what the read of af found, unless an event since the read
// began can have changed it.
func (r *cacheRead) put(af uint8, scope *RouteScope, compact bool, routes []state.Route, sets []state.RouteSet, big map[uint32]bool, d *devNames, nhs setNexthops) {
	if r == nil {
		return
	}
	c := r.c
	c.mu.Lock()
	synced := c.synced[r.netns]
	c.mu.Unlock()
	if synced == nil || !synced() {
		return
	}
	e := &cachedRoutes{scope: scope, compact: compact, routes: slices.Clone(routes), sets: slices.Clone(sets), big: big, d: d, nhs: nhs}
	c.mu.Lock()
	defer c.mu.Unlock()
	evs := c.pending[r.netns]
	if len(evs) > maxPending {
		return
	}
	for _, ev := range evs[r.mark:] {
		if e.affectedBy(af, ev) {
			return
		}
	}
	c.entries[cacheKey{r.netns, af}] = e
	c.served[r.netns] = true
}

// end finishes the read.
func (r *cacheRead) end() {
	if r == nil {
		return
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading[r.netns]--; c.reading[r.netns] <= 0 {
		delete(c.reading, r.netns)
		delete(c.pending, r.netns)
	}
}

// keepsAll reports whether a read with the resolved scope s keeps every
// route a read with the resolved scope o keeps (and maybe more: routes
// of others that no plan of o looks at, which change no plan, as a full
// read gives the plan a scoped one does). So a plan whose VPN went down
// (fewer points) is served by the read made while it was up.
func (s *RouteScope) keepsAll(o *RouteScope) bool {
	if s == nil || o == nil {
		return s == o
	}
	if s.whole() != o.whole() {
		return false
	}
	for _, t := range o.Tables {
		if !s.HasTable(t) {
			return false
		}
	}
	// A route covering o's point p covers any point of s inside p.
	for _, p := range o.Points {
		if !slices.ContainsFunc(s.Points, func(q netip.Prefix) bool {
			return q.Addr().Is4() == p.Addr().Is4() && p.Bits() <= q.Bits() && p.Contains(q.Addr())
		}) {
			return false
		}
	}
	return true
}
