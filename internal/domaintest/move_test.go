package domaintest

import (
	"strings"
	"testing"
	"time"
)

// TestMoveIPv6: an interface whose IPv6 address passed duplicate address
// detection in the host (as a NIC's or a VPN's does) is moved into a
// domain whose identity routes through it, with that address as the
// routes' source: the apply must not fail because the moved address is
// still tentative in its new namespace, and the domain reaches the far
// end over IPv6.
func TestMoveIPv6(t *testing.T) {
	e := newEnv(t, "mv")
	top, far, dom := e.NS("top"), e.NS("far"), e.NS("dom")
	e.addNS("top", "far")
	// Duplicate address detection as on a real host.
	e.sysctl(top, "net.ipv6.conf.all.accept_dad=1", "net.ipv6.conf.default.accept_dad=1")
	e.ip(top, "link", "add", "dtmv0", "type", "veth", "peer", "name", "far0", "netns", far)
	e.ip(far, "addr", "add", "10.99.0.1/30", "dev", "far0")
	e.ip(far, "addr", "add", "2001:db8:99::1/64", "dev", "far0", "nodad")
	e.ip(far, "link", "set", "far0", "up")
	e.ip(top, "addr", "add", "10.99.0.2/30", "dev", "dtmv0")
	e.ip(top, "addr", "add", "2001:db8:99::2/64", "dev", "dtmv0")
	e.ip(top, "link", "set", "dtmv0", "up")
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(e.ip(top, "-6", "addr", "show", "dev", "dtmv0"), "tentative") {
		if time.Now().After(deadline) {
			t.Fatal("the address stays tentative in the host")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.serve(far, "far", probePort)
	e.apply(e.config("move.yaml", nil), top)
	e.waitLinks(dom)
	out, code := e.exec(dom, nil, "tcp", e.helper, "[2001:db8:99::1]:7000")
	if code != 0 || !strings.HasPrefix(out, "far [2001:db8:99::2]:") {
		t.Errorf("from the domain over IPv6: exit %d, %q", code, out)
	}
}
