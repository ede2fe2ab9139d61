package domaintest

import (
	"strings"
	"testing"
	"time"
)

// TestOverlap: two domains holding the same 10.0.0.0/24 (and the host a
// third one) work at once: a process run in each domain with `tunroute
// exec` reaches the server at 10.0.0.1 of its own network, which answers
// with its name.
func TestOverlap(t *testing.T) {
	e := newEnv(t, "ov")
	top := e.NS("top")
	e.addNS("top", "worklan", "homelan", "toplan")
	// Three networks 10.0.0.0/24, each with a server at 10.0.0.1 and the
	// host at 10.0.0.2, all three attached to the host at first.
	for _, n := range []struct{ dev, lan string }{{"dtwork0", "worklan"}, {"dthome0", "homelan"}, {"dtlan0", "toplan"}} {
		e.veth(top, n.dev, []string{"10.0.0.2/24"}, e.NS(n.lan), "eth0", []string{"10.0.0.1/24"})
		e.serve(e.NS(n.lan), n.lan, probePort)
	}
	cfg := e.config("overlap.yaml", nil)
	e.apply(cfg, top)
	work, home := e.NS("work"), e.NS("home")
	e.waitLinks(top, work, home)
	if got := strings.Join(e.links(top), " "); got != "dtlan0 lo" {
		t.Errorf("links left in the host: %s, want dtlan0 lo", got)
	}
	for _, d := range []struct{ domain, want string }{{work, "worklan"}, {home, "homelan"}} {
		out, code := e.exec(d.domain, nil, "tcp", e.helper, "10.0.0.1:7000")
		if code != 0 || !strings.HasPrefix(out, d.want+" 10.0.0.2:") {
			t.Errorf("tunroute exec %s -- tcp 10.0.0.1:7000: exit %d, %q; want %s's server to answer", d.domain, code, out, d.want)
		}
	}
	got, err := tcpTry(top, target{Addr: mustAddr("10.0.0.1")}, probePort, 3*time.Second)
	if err != nil || !strings.HasPrefix(got, "toplan 10.0.0.2:") {
		t.Errorf("the host -> 10.0.0.1: %q, %v; want its own LAN's server", got, err)
	}
}
