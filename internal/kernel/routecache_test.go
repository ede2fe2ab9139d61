package kernel

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
)

// TestRouteCacheAgreesWithTheKernel: a plan's read served by the cache
// equals a fresh read after every one of a random sequence of changes
// (routes of others covering a point of the scope or not, in main and in
// small tables, tunroute's routes added and deleted, addresses, a link
// going down), and changes the scope drops leave the cache serving.
func TestRouteCacheAgreesWithTheKernel(t *testing.T) {
	needRoot(t)
	ns := scopeNS(t, "cache")
	quietIPv6(t, ns)
	lines := []string{"link set lo up", "link add va type veth peer name vb", "link set va up", "link set vb up",
		"addr add 192.0.2.10/24 dev va", "addr add 2001:db8:5::1/64 dev va nodad",
		"route add default via 192.0.2.1 dev va proto static",
		"route add default via 2001:db8:5::fe dev va proto static",
		"route add 128.0.0.0/1 via 192.0.2.1 dev va proto 116",
		"route add 10.3.0.0/24 via 192.0.2.1 dev va table 300 proto 116"}
	for i := 0; i < 2000; i++ {
		lines = append(lines, fmt.Sprintf("route add 10.%d.%d.0/24 via 192.0.2.1 dev va proto bgp", 100+i/250, i%250))
	}
	ipBatch(t, ns, lines)
	settle(t, ns)

	cache := watchedCache(t, ns)

	scope := &RouteScope{Tables: []uint32{state.TableMain, state.TableLocal, 100}, Whole: 500, Points: []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"),
		netip.MustParsePrefix("128.0.0.0/1"), netip.MustParsePrefix("10.100.3.0/24"),
		netip.MustParsePrefix("198.51.100.7/32"),
	}}
	read := func(withCache bool) string {
		t.Helper()
		o := ObserveOptions{CompactRoutes: true, Routes: scope}
		if withCache {
			o.Cache = cache
		}
		b, _ := compactRead(t, ns, o)
		return b
	}
	read(true) // fills the cache
	changes := []struct {
		cmd       string
		keepsHits bool // the scope drops it: the cache keeps serving
	}{
		{"route add 10.120.1.0/24 via 192.0.2.1 dev va proto bgp", true},             // covers no point
		{"route del 10.100.7.0/24 via 192.0.2.1 dev va proto bgp", true},             // a sibling of a point
		{"route add 10.100.0.0/16 via 192.0.2.1 dev va proto bgp", false},            // an ancestor of a point
		{"route add 198.51.100.0/24 via 192.0.2.1 dev va proto boot", false},         // covers a point
		{"route add 10.1.0.0/24 via 192.0.2.1 dev va table 100 proto static", false}, // a small table of the scope
		{"route add 10.2.0.0/24 via 192.0.2.1 dev va table 200 proto static", true},  // a table outside it
		// tunroute's own routes: the change is applied to what is kept
		{"route del 128.0.0.0/1 via 192.0.2.1 dev va proto 116", true},
		{"route add 10.4.0.0/24 via 192.0.2.1 dev va table 300 proto 116", true},
		{"route add 128.0.0.0/1 via 192.0.2.1 dev va proto 116", true},
		{"route replace 128.0.0.0/1 via 192.0.2.1 dev va proto 116 mtu 1400", true},
		{"-6 route add 2001:db8:99::/48 via 2001:db8:5::fe dev va proto 116", true},
		{"-6 route replace 2001:db8:99::/48 via 2001:db8:5::fe dev va proto 116 mtu 1300", true},
		{"-6 route del 2001:db8:99::/48 via 2001:db8:5::fe dev va proto 116", true},
		{"route replace 10.100.3.0/24 via 192.0.2.1 dev va proto 116", true}, // takes the key of a route of others
		{"route del 10.3.0.0/24 table 300 proto 116", true},
		{"-6 route add 2001:db8:1001::/48 via 2001:db8:5::fe dev va proto bgp", false},
		{"addr add 192.0.2.11/24 dev va", false},
		{"route del 10.100.0.0/16 via 192.0.2.1 dev va proto bgp", false},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 40; i++ {
		c := changes[i%len(changes)]
		if i >= len(changes) {
			// then random routes of others: covering a point or not
			a, b := 100+rng.IntN(9), rng.IntN(250)
			c.cmd = fmt.Sprintf("route replace 10.%d.%d.0/24 via 192.0.2.1 dev va proto bgp metric %d", a, b, rng.IntN(3))
			c.keepsHits = !(a == 100 && b == 3)
		}
		hits0, _ := cache.Stats()
		ipn(t, ns, strings.Fields(c.cmd)...)
		time.Sleep(5 * time.Millisecond) // not needed for correctness: Synced waits; lets the event arrive
		got, want := read(true), read(false)
		if got != want {
			t.Fatalf("after %q the cached read differs from the kernel:\n%s\nwant\n%s", c.cmd, got, want)
		}
		if hits, _ := cache.Stats(); c.keepsHits && hits == hits0 {
			t.Errorf("after %q (which the scope drops) the cache did not serve the read", c.cmd)
		}
	}
	// A plan that looks at fewer points (a VPN went down) is served by the
	// wider read: what it gets holds all a fresh read of its own scope
	// has, and nothing a full read does not.
	narrow := &RouteScope{Tables: []uint32{state.TableMain, state.TableLocal}, Whole: 500, Points: []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"), netip.MustParsePrefix("10.100.3.0/24")}}
	readScope := func(sc *RouteScope, c *RouteCache) []string {
		h := openT(t, ns)
		defer h.Close()
		st, err := h.ObserveWith(ObserveOptions{CompactRoutes: true, Routes: sc, Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		for i := range st.Routes {
			st.Routes[i].Expires = 0
		}
		return routeStrings(st.Routes)
	}
	read(true)
	hits0, _ := cache.Stats()
	served, own, all := readScope(narrow, cache), readScope(narrow, nil), readScope(nil, nil)
	if hits, _ := cache.Stats(); hits != hits0+2 {
		t.Errorf("a narrower plan's read was not served by the cache")
	}
	for _, r := range own {
		if !slices.Contains(served, r) {
			t.Errorf("the served read lacks %s", r)
		}
	}
	for _, r := range served {
		if !slices.Contains(all, r) {
			t.Errorf("the served read has %s, which the kernel does not", r)
		}
	}

	// A link going down changes what routes say: the cache forgets.
	ipn(t, ns, "link", "set", "vb", "down")
	if got, want := read(true), read(false); got != want {
		t.Fatalf("after a link went down the cached read differs:\n%s\nwant\n%s", got, want)
	}
	hits, misses := cache.Stats()
	t.Logf("cache: %d reads served, %d read from the kernel", hits, misses)
	if hits < 10 {
		t.Errorf("the cache served only %d reads", hits)
	}
}

func TestRouteScopeKeepsAll(t *testing.T) {
	pp := func(ss ...string) (out []netip.Prefix) {
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	wide := &RouteScope{Tables: []uint32{254, 255, 100}, Points: pp("0.0.0.0/0", "10.8.0.1/32", "198.51.100.0/24", "::/0")}
	for _, c := range []struct {
		o    *RouteScope
		want bool
	}{
		{&RouteScope{Tables: []uint32{254, 255}, Points: pp("0.0.0.0/0", "10.8.0.1/32")}, true},
		{&RouteScope{Tables: []uint32{254}, Points: pp("10.8.0.0/24")}, true},      // a point of wide inside it
		{&RouteScope{Tables: []uint32{254}, Points: pp("198.51.100.7/32")}, false}, // inside a point of wide: a /25 covering it was dropped
		{&RouteScope{Tables: []uint32{254, 300}, Points: pp("0.0.0.0/0")}, false},  // a table wide does not read
		{&RouteScope{Tables: []uint32{254}, Points: pp("::/0", "2001:db8::/32")}, false},
		{&RouteScope{Tables: []uint32{254}, Points: pp("0.0.0.0/0"), Whole: 10}, false},
	} {
		if got := wide.keepsAll(c.o); got != c.want {
			t.Errorf("keepsAll(%v %v) = %v, want %v", c.o.Tables, c.o.Points, got, c.want)
		}
	}
}

// watchedCache is a route cache whose watcher follows ns until the test
// ends (its events are dropped: only the cache hears them).
func watchedCache(t *testing.T, ns string) *RouteCache {
	t.Helper()
	cache := NewRouteCache()
	events := make(chan WatchEvent, 1<<16)
	w, err := cache.Watch(ns, events)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range events {
		}
	}()
	t.Cleanup(func() { cache.Unwatch(ns); w.Close(); close(events) })
	return cache
}

// compactRead reads ns with o and returns its routes and route sets as
// JSON (expiry times zeroed), and the number of sets.
func compactRead(t *testing.T, ns string, o ObserveOptions) (string, int) {
	t.Helper()
	h := openT(t, ns)
	defer h.Close()
	st, err := h.ObserveWith(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.Routes {
		st.Routes[i].Expires = 0
	}
	b, _ := json.Marshal(struct {
		R []string
		S []state.RouteSet
	}{routeStrings(st.Routes), st.RouteSets})
	return string(b), len(st.RouteSets)
}
