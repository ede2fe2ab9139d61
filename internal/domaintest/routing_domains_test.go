package domaintest

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Ports of the tests' servers: every server answers on probePort (TCP and
// UDP); internet's declared service is servicePort.
const (
	probePort   = 7000
	servicePort = 8080
)

// The far site behind private's VPN interface (a veth standing in for
// the tunnel: its far end is the far site's only link).
var (
	farTunnel4 = netip.MustParsePrefix("10.99.0.1/30")
	farTunnel6 = netip.MustParsePrefix("2001:db8:99::1/64")
	farHost4   = netip.MustParseAddr("10.99.1.1")
	farHost6   = netip.MustParseAddr("2001:db8:99:1::1")
	vpnAddr4   = netip.MustParsePrefix("10.99.0.2/30")
	vpnAddr6   = netip.MustParsePrefix("2001:db8:99::2/64")
)

// TestRoutingDomains is routing domains end to end: domains internet, private and
// hostile around a host that routes between them; a far site reachable
// only through the VPN interface inside private, reached by a process
// that `tunroute exec` runs there; hostile reaches neither private, nor
// the host, nor the far site by any of their addresses with TCP, UDP or
// ICMP, while its one declared flow (TCP to a service in internet) works.
func TestRoutingDomains(t *testing.T) {
	e := newEnv(t, "s4")
	top, far := e.NS("top"), e.NS("far")
	internet, private, hostile := e.NS("internet"), e.NS("private"), e.NS("hostile")
	e.addNS("top", "far")
	e.router(top)
	// The VPN interface appears in the host, as a tunnel daemon's would.
	e.veth(top, "dtvpn0", []string{vpnAddr4.String(), vpnAddr6.String()},
		far, "farvpn0", []string{farTunnel4.String(), farTunnel6.String()})
	e.ip(far, "addr", "add", farHost4.String()+"/32", "dev", "lo")
	e.ip(far, "addr", "add", farHost6.String()+"/128", "dev", "lo")
	cfg := e.config("routing-domains.yaml", nil)

	t0 := time.Now()
	out := e.apply(cfg, top)
	t.Logf("apply: %v", time.Since(t0).Round(time.Millisecond))
	for _, want := range []string{"+ namespace " + internet + " (created)", "> move dtvpn0 from namespace " + top + " into namespace " + private} {
		if !strings.Contains(out, want) {
			t.Errorf("apply's plan lacks %q:\n%s", want, out)
		}
	}
	e.waitLinks(top, internet, private, hostile, far)
	if got := e.links(private); strings.Join(got, " ") != "dt-priv dtvpn0 lo" {
		t.Errorf("links in private: %v, want dt-priv, dtvpn0 (moved in) and lo", got)
	}
	if got := e.links(top); strings.Join(got, " ") != "dt-host dt-inet dt-priv lo" {
		t.Errorf("links in the host: %v, want the three pipes and lo (dtvpn0 moved out)", got)
	}
	for _, a := range []netip.Prefix{vpnAddr4, vpnAddr6} {
		if !hasAddr(e.addrs(private), "dtvpn0", a) {
			t.Errorf("private: dtvpn0 lost its address %s in the move", a)
		}
	}

	for _, ns := range []string{top, internet, private, far} {
		e.serve(ns, strings.TrimPrefix(ns, e.Prefix), probePort)
	}
	e.serve(internet, "internet-service", servicePort)

	t.Run("private reaches the far site through its VPN interface", func(t *testing.T) {
		e := e.in(t)
		for _, dst := range []netip.Addr{farHost4, farHost6} {
			hp := netip.AddrPortFrom(dst, probePort).String()
			out, code := e.exec(private, nil, "tcp", e.helper, hp)
			want := "far " + vpnAddr4.Addr().String()
			if dst.Is6() {
				want = "far [" + vpnAddr6.Addr().String() + "]"
			}
			if code != 0 || !strings.HasPrefix(out, want+":") {
				t.Errorf("tunroute exec %s -- helper tcp %s: exit %d, %q; want the far site to see %s (private's tunnel address)", private, hp, code, out, want)
			}
		}
		// Nothing else has a way to the far site: only private holds
		// the tunnel.
		farTargets := []target{{Addr: farHost4}, {Addr: farHost6}, {Addr: farTunnel4.Addr()}, {Addr: farTunnel6.Addr()}}
		for _, ns := range []string{top, internet, hostile} {
			unreachable(t, ns, farTargets, probePort)
		}
	})

	t.Run("private and the host reach each other", func(t *testing.T) {
		e := e.in(t)
		// The control for the isolation below: the probes work, and
		// the host routes between the domains.
		reach(t, private, globalTargets(e.addrs(top), "lo"), probePort)
		reach(t, top, []target{{Addr: netip.MustParseAddr("10.250.2.2")}, {Addr: netip.MustParseAddr("2001:db8:250:2::2")}}, probePort)
		reach(t, private, []target{{Addr: netip.MustParseAddr("10.250.1.2")}, {Addr: netip.MustParseAddr("2001:db8:250:1::2")}}, probePort)
	})

	t.Run("hostile's declared flow works", func(t *testing.T) {
		for _, dst := range []string{"10.250.1.2", "2001:db8:250:1::2"} {
			a := netip.MustParseAddr(dst)
			var got string
			var err error
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				if got, err = tcpTry(hostile, target{Addr: a}, servicePort, time.Second); err == nil {
					break
				}
			}
			if err != nil || !strings.HasPrefix(got, "internet-service ") {
				t.Errorf("hostile -> internet %s port %d (declared): %q, %v", dst, servicePort, got, err)
			}
		}
	})

	t.Run("hostile reaches nothing else", func(t *testing.T) {
		e := e.in(t)
		before := e.dropCount(top, "undeclared flow from "+hostile)
		var targets []target
		for _, ns := range []string{top, private, far} {
			targets = append(targets, allTargets(e.addrs(ns), "dt-host")...)
		}
		// internet itself, but for the declared service.
		targets = append(targets, allTargets(e.addrs(internet), "dt-host")...)
		unreachable(t, hostile, targets, probePort)
		for _, dst := range []string{"10.250.1.2", "2001:db8:250:1::2"} {
			if got, err := udpTry(hostile, target{Addr: netip.MustParseAddr(dst)}, servicePort, 500*time.Millisecond); err == nil {
				t.Errorf("hostile -> internet %s UDP port %d (only TCP is declared): answered %q", dst, servicePort, got)
			}
		}
		// The pipe's firewall, not a missing route, is what stops it.
		if after := e.dropCount(top, "undeclared flow from "+hostile); after <= before {
			t.Errorf("the host's pipe firewall counted no undeclared packets from hostile (%d before, %d after)", before, after)
		}
	})

	t.Run("private's resolv.conf", func(t *testing.T) {
		e := e.in(t)
		out, code := e.exec(private, nil, "", "/bin/cat", "/etc/resolv.conf")
		if code != 0 || !strings.Contains(out, "nameserver 10.99.1.53\n") {
			t.Errorf("/etc/resolv.conf inside %s: exit %d\n%s", private, code, out)
		}
	})
}

func hasAddr(as []ipAddr, dev string, p netip.Prefix) bool {
	for _, a := range as {
		if a.Dev == dev && a.Prefix == p {
			return true
		}
	}
	return false
}

// globalTargets are a namespace's addresses but loopback and link-local
// ones (devices named in skip are left out).
func globalTargets(as []ipAddr, skip ...string) []target {
	var out []target
	for _, a := range as {
		if a.Addr.IsLoopback() || a.Addr.IsLinkLocalUnicast() || contains(skip, a.Dev) {
			continue
		}
		out = append(out, target{Addr: a.Addr})
	}
	return out
}

// allTargets are all of a namespace's addresses but loopback ones, the
// link-local ones tried by way of the prober's interface zone.
func allTargets(as []ipAddr, zone string) []target {
	var out []target
	for _, a := range as {
		switch {
		case a.Addr.IsLoopback():
		case a.Addr.IsLinkLocalUnicast():
			out = append(out, target{Addr: a.Addr, Zone: zone})
		default:
			out = append(out, target{Addr: a.Addr})
		}
	}
	return out
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
