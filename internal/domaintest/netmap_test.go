package domaintest

import (
	"strings"
	"testing"
	"time"
)

// TestNetmap: with 1:1 NAT on the pipes, the host reaches two domains'
// identical 10.0.0.0/24 at once, each under a range of its own, and each
// server sees the host's pipe address.
func TestNetmap(t *testing.T) {
	e := newEnv(t, "nm")
	top := e.NS("top")
	e.addNS("top", "worklan", "homelan")
	for _, n := range []struct{ dev, lan string }{{"dtwork0", "worklan"}, {"dthome0", "homelan"}} {
		e.veth(top, n.dev, []string{"10.0.0.2/24"}, e.NS(n.lan), "eth0", []string{"10.0.0.5/24"})
		e.ip(e.NS(n.lan), "route", "add", "default", "via", "10.0.0.2")
		e.serve(e.NS(n.lan), n.lan, probePort)
	}
	cfg := e.config("netmap.yaml", nil)
	e.apply(cfg, top)
	e.waitLinks(top, e.NS("work"), e.NS("home"))
	for _, c := range []struct{ addr, want string }{
		{"10.100.0.5", "worklan 10.250.1.1:"},
		{"10.101.0.5", "homelan 10.250.2.1:"},
	} {
		got, err := tcpTry(top, target{Addr: mustAddr(c.addr)}, probePort, 3*time.Second)
		if err != nil || !strings.HasPrefix(got, c.want) {
			t.Errorf("the host -> %s: %q, %v; want %q...", c.addr, got, err, c.want)
		}
	}
	if _, err := tcpTry(top, target{Addr: mustAddr("10.102.0.5")}, probePort, time.Second); err == nil {
		t.Error("an unmapped range answered")
	}
}
