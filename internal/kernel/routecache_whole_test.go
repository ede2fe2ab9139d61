package kernel

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRouteCacheWholeReads: a whole compact read (the plan of a config
// with route lists: tunroute's routes kept as sets) served by the cache
// equals a fresh read after each change (tunroute's routes in and out of
// a set's table, routes of others anywhere, an address), and a read
// after a quiet spell is served from the cache.
func TestRouteCacheWholeReads(t *testing.T) {
	needRoot(t)
	ns := scopeNS(t, "whole")
	quietIPv6(t, ns)
	lines := []string{"link set lo up", "link add va type veth peer name vb", "link set va up", "link set vb up",
		"addr add 192.0.2.10/24 dev va", "addr add 2001:db8:5::1/64 dev va nodad",
		"route add default via 192.0.2.1 dev va proto static"}
	for i := range 300 { // a route list: one set
		lines = append(lines, fmt.Sprintf("route add 10.%d.%d.0/24 via 192.0.2.1 dev va table 900 proto 116", 100+i/250, i%250))
	}
	for i := range 200 {
		lines = append(lines, fmt.Sprintf("route add 172.16.%d.0/24 via 192.0.2.1 dev va proto bgp", i))
	}
	ipBatch(t, ns, lines)
	settle(t, ns)

	cache := watchedCache(t, ns)
	read := func(c *RouteCache) (string, int) {
		t.Helper()
		return compactRead(t, ns, ObserveOptions{CompactRoutes: true, Cache: c})
	}
	if _, sets := read(cache); sets != 1 {
		t.Fatalf("the whole read made %d route sets, want 1", sets)
	}
	for _, cmd := range []string{
		"route del 10.100.7.0/24 via 192.0.2.1 dev va table 900 proto 116", // out of the set
		"route add 10.100.7.0/24 via 192.0.2.1 dev va table 900 proto 116", // back in
		"route add 10.200.0.0/24 via 192.0.2.1 dev va table 901 proto 116", // tunroute's, another table
		"route add 172.17.0.0/24 via 192.0.2.1 dev va proto bgp",           // someone else's
		"route add 172.18.0.0/24 via 192.0.2.1 dev va table 77 proto static",
		"-6 route add 2001:db8:77::/48 via 2001:db8:5::fe dev va proto bgp",
		"addr add 192.0.2.11/24 dev va",
		"route del 172.16.5.0/24 via 192.0.2.1 dev va proto bgp",
	} {
		ipn(t, ns, strings.Fields(cmd)...)
		time.Sleep(5 * time.Millisecond)
		got, _ := read(cache)
		want, _ := read(nil)
		if got != want {
			t.Fatalf("after %q the cached whole read differs from the kernel:\n%s\nwant\n%s", cmd, got, want)
		}
		hits0, _ := cache.Stats()
		if again, _ := read(cache); again != want {
			t.Fatalf("after %q a second cached read differs:\n%s\nwant\n%s", cmd, again, want)
		}
		if hits, _ := cache.Stats(); hits < hits0+2 {
			t.Errorf("after %q and a quiet spell the whole read was not served by the cache (hits %d -> %d)", cmd, hits0, hits)
		}
	}
}
