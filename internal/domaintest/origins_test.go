package domaintest

import (
	"strings"
	"testing"
	"time"
)

// TestFlowOrigins: `from: host` is the host's own traffic, not what the
// host forwards. With forwarding on in the host, a domain with an open
// pipe to it (c), another firewalled domain (b, a), and hosts beyond an
// uplink (outside in a declared range, stranger in none) reach a
// domain's services only by the flows declared from their real origin,
// in both directions between a and b, and through a netmap (n); the
// host's guard of what it forwards into a pipe is what stops the rest.
func TestFlowOrigins(t *testing.T) {
	e := newEnv(t, "or")
	top, a, b, c, n := e.NS("top"), e.NS("a"), e.NS("b"), e.NS("c"), e.NS("n")
	outside, stranger := e.NS("outside"), e.NS("stranger")
	e.addNS("top", "outside", "stranger")
	e.router(top)
	e.veth(top, "dtup0", []string{"198.51.100.1/24", "2001:db8:51::1/64"}, outside, "eth0", []string{"198.51.100.2/24", "2001:db8:51::2/64"})
	e.veth(top, "dtup1", []string{"203.0.113.1/24", "2001:db8:203::1/64"}, stranger, "eth0", []string{"203.0.113.2/24", "2001:db8:203::2/64"})
	e.ip(outside, "route", "add", "default", "via", "198.51.100.1")
	e.ip(outside, "-6", "route", "add", "default", "via", "2001:db8:51::1")
	e.ip(stranger, "route", "add", "default", "via", "203.0.113.1")
	e.ip(stranger, "-6", "route", "add", "default", "via", "2001:db8:203::1")
	e.apply(e.config("origins.yaml", nil), top)
	e.waitLinks(top, a, b, c, n, outside, stranger)
	e.ip(n, "addr", "add", "10.0.0.5/32", "dev", "lo")
	e.serve(top, "top", 7000)
	for _, ns := range []string{a, b, n} {
		e.serve(ns, strings.TrimPrefix(ns, e.Prefix), 7000)
		e.serve(ns, strings.TrimPrefix(ns, e.Prefix)+"-7001", 7001)
	}
	aAddrs := []string{"10.250.1.2", "2001:db8:250:1::2"}
	bAddrs := []string{"10.250.2.2", "2001:db8:250:2::2"}

	// reaches tries TCP from ns to each address and port, for a few
	// seconds if it must work, once if it must not.
	reaches := func(t *testing.T, ns string, addrs []string, port int, want bool) {
		t.Helper()
		for _, dst := range addrs {
			var got string
			var err error
			for deadline := time.Now().Add(5 * time.Second); ; {
				got, err = tcpTry(ns, target{Addr: mustAddr(dst)}, port, time.Second)
				if err == nil || !want || time.Now().After(deadline) {
					break
				}
			}
			switch {
			case want && err != nil:
				t.Errorf("%s -> %s port %d (declared): %v", strings.TrimPrefix(ns, e.Prefix), dst, port, err)
			case !want && err == nil:
				t.Errorf("%s -> %s port %d (not declared from %s): answered %q", strings.TrimPrefix(ns, e.Prefix), dst, port, strings.TrimPrefix(ns, e.Prefix), got)
			}
		}
	}

	t.Run("the host's own traffic", func(t *testing.T) {
		reaches(t, top, aAddrs, 7000, true)
		reaches(t, top, bAddrs, 7000, true)
		// a accepts port 7001 from b, through the host: the host's own
		// traffic is held to its flows where it leaves.
		reaches(t, top, aAddrs, 7001, false)
		reaches(t, top, bAddrs, 7001, false)
	})
	t.Run("a domain with an open pipe to the host does not pass for the host", func(t *testing.T) {
		e := e.in(t)
		// The control: c reaches the host's own service.
		reaches(t, c, []string{"10.250.3.1", "2001:db8:250:3::1"}, 7000, true)
		before := e.dropCount(top, "pipe dt-oa: forwarded into it, undeclared")
		reaches(t, c, aAddrs, 7000, false)
		reaches(t, c, aAddrs, 7001, false)
		reaches(t, c, bAddrs, 7000, false)
		if after := e.dropCount(top, "pipe dt-oa: forwarded into it, undeclared"); after <= before {
			t.Errorf("the host's guard of dt-oa counted nothing (%d before, %d after): what stopped c?", before, after)
		}
	})
	t.Run("b to a: only the flow declared from b", func(t *testing.T) {
		reaches(t, b, aAddrs, 7001, true)
		reaches(t, b, aAddrs, 7000, false)
	})
	t.Run("a to b: nothing is declared from a", func(t *testing.T) {
		reaches(t, a, bAddrs, 7000, false)
		reaches(t, a, bAddrs, 7001, false)
	})
	t.Run("from beyond the uplink: only the declared prefixes", func(t *testing.T) {
		reaches(t, outside, bAddrs, 7001, true)
		reaches(t, outside, bAddrs, 7000, false)
		reaches(t, stranger, bAddrs, 7001, false)
		reaches(t, outside, aAddrs, 7000, false)
	})
	t.Run("through a netmap: the destination as the host sees it", func(t *testing.T) {
		mapped := []string{"10.100.0.5"}
		reaches(t, top, mapped, 7000, true)
		reaches(t, outside, mapped, 7000, false) // the Internet through the host's netmap route
		reaches(t, c, mapped, 7000, false)
		reaches(t, outside, mapped, 7001, true)
		reaches(t, stranger, mapped, 7001, false)
		reaches(t, top, mapped, 7001, false)
	})
}
