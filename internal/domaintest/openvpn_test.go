package domaintest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
)

// countRuleset counts, in the isp, what arrives from the host's uplink
// (c0): OpenVPN's own traffic to its server (and the host's "port
// unreachable" when the server still talks to a client that is gone),
// IPv6 link plumbing, and everything else, which would be a leak.
const countRuleset = `table inet tr-dt-count {
	chain in {
		type filter hook prerouting priority -300; policy accept;
		iifname "c0" ip daddr 198.51.100.2 udp dport 1194 counter accept comment "transport"
		iifname "c0" ip daddr 198.51.100.2 icmp type destination-unreachable counter accept comment "transport gone"
		iifname "c0" icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } counter accept comment "nd"
		iifname "c0" counter comment "clear"
	}
}
`

// TestOpenVPNDomain: a real OpenVPN client runs in the host (the lab's
// client namespace, whose eth0 is the uplink to the isp); its hook,
// `tunroute hook openvpn`, moves the tunnel device into a domain when it
// comes up. A process in the domain sees only the tunnel and reaches
// inet through it; once the daemon is killed (SIGKILL: no hook runs) the
// domain has no route out and nothing it sends reaches the host's uplink.
// A new daemon's tunnel is moved in again.
func TestOpenVPNDomain(t *testing.T) {
	e := newEnv(t, "vp", "openvpn")
	l := &lab.Lab{Prefix: e.Prefix, RunDir: filepath.Join(e.Dir, "lab")}
	if err := l.Build(); err != nil {
		t.Fatal(err)
	}
	top, isp, inet := l.NS(lab.Client), l.NS(lab.ISP), l.NS(lab.Inet)
	domain := e.NS("vpn")
	// The host routes: were the domain to send anything to it, it could
	// go out of the uplink.
	e.router(top)
	e.serve(inet, "inet", probePort)
	e.nftLoad(isp, countRuleset)
	cfg := e.config("vpn-domain.yaml", nil)
	ovpnDir := filepath.Join(e.Dir, "ovpn")
	if err := os.Mkdir(ovpnDir, 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := labtest.SetupOpenVPN(l, labtest.OpenVPNConfig{Dir: ovpnDir,
		Hook:   fmt.Sprintf("%s --run-dir %s hook openvpn -c %s", e.Bin, e.RunDir, cfg),
		Setenv: map[string]string{"TUNROUTE_VPN": "work"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)

	// Before the VPN: the domain and its kill switch exist, no tunnel.
	e.apply(cfg, top)
	e.waitLinks(top, domain)
	inetTargets := []target{{Addr: lab.InetEth4.Addr()}, {Addr: lab.InetEth6.Addr()},
		{Addr: lab.ServerEth4.Addr()}, {Addr: lab.ISPC04.Addr()}, {Addr: lab.ISPC06.Addr()}}
	unreachable(t, domain, inetTargets, probePort)
	leaks := func(when string) {
		t.Helper()
		c := e.counters(isp, "tr-dt-count")
		if c["clear"] != 0 {
			t.Errorf("%s: %d packets arrived from the host's uplink besides OpenVPN's (%v)", when, c["clear"], c)
		}
	}
	leaks("before the VPN")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := o.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	up := func(when string) {
		t.Helper()
		t0 := time.Now()
		if err := o.StartClient(ctx, true); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		t.Logf("%s: OpenVPN up and hooks done in %v", when, time.Since(t0).Round(time.Millisecond))
		if got := strings.Join(e.links(domain), " "); got != "dt-vpn lo ovpn0" {
			t.Fatalf("%s: links in the domain: %s; want the tunnel ovpn0 moved in\n%s", when, got, o.Client.LogTail())
		}
		if contains(e.links(top), "ovpn0") {
			t.Errorf("%s: ovpn0 is still in the host", when)
		}
		if out, code := e.tr("plan", "-c", cfg, "--netns", top); code != 0 {
			t.Errorf("%s: plan after the hooks: exit %d, want 0\n%s", when, code, out)
		}
		// The process inside sees the tunnel as its way out.
		for _, r := range e.routesInside(domain) {
			if r.Dev != "ovpn0" && !(r.Dev == "dt-vpn" && strings.HasPrefix(r.Dst, "10.252.")) {
				t.Errorf("%s: a route inside the domain not through the tunnel: %+v", when, r)
			}
		}
		// inet sees the VPN server's address: the connection went
		// through the tunnel (the server masquerades its clients).
		for _, c := range []struct{ dst, want string }{
			{"203.0.113.2:7000", "inet 198.51.100.2:"},
			{"[2001:db8:203::2]:7000", "inet [2001:db8:51::2]:"},
		} {
			out, code := e.exec(domain, nil, "tcp", e.helper, c.dst)
			if code != 0 || !strings.HasPrefix(out, c.want) {
				t.Errorf("%s: tunroute exec %s -- tcp %s: exit %d, %q; want %q...", when, domain, c.dst, code, out, c.want)
			}
		}
		out, _ := e.exec(domain, nil, "", "/bin/cat", "/etc/resolv.conf")
		if !strings.Contains(out, "nameserver 10.8.0.1\n") {
			t.Errorf("%s: resolv.conf in the domain:\n%s", when, out)
		}
		leaks(when)
		if c := e.counters(isp, "tr-dt-count"); c["transport"] == 0 {
			t.Errorf("%s: no OpenVPN traffic counted on the uplink (%v): the counters count nothing", when, c)
		}
	}
	up("first start")

	// SIGKILL: no hook runs; the tunnel device goes with the process.
	o.Client.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for contains(e.links(domain), "ovpn0") {
		if time.Now().After(deadline) {
			t.Fatal("ovpn0 is still in the domain 5 s after OpenVPN was killed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range e.routesInside(domain) {
		if r.Dev != "dt-vpn" || !strings.HasPrefix(r.Dst, "10.252.") {
			t.Errorf("after the kill: a route out of the domain: %+v", r)
		}
	}
	unreachable(t, domain, inetTargets, probePort)
	if out, code := e.exec(domain, nil, "tcp", e.helper, "203.0.113.2:7000"); code == 0 {
		t.Errorf("after the kill: a process in the domain reached inet: %q", out)
	}
	leaks("after the kill")

	// A new daemon: its new tunnel is moved in again.
	up("restart")

	// A clean stop: the down hooks run (inside the host, the tunnel
	// being in the domain) and withdraw the routes through it.
	mark := o.Client.LogSize()
	if !o.Client.Stop(5 * time.Second) {
		t.Errorf("OpenVPN did not stop on SIGTERM")
	}
	b, _ := os.ReadFile(o.Client.Log)
	if tail := string(b[mark:]); strings.Contains(tail, "Failed running command") || !strings.Contains(tail, "is down") {
		t.Errorf("the down hooks did not run cleanly:\n%s", tail)
	}
	for _, r := range e.routesInside(domain) {
		if r.Dev != "dt-vpn" {
			t.Errorf("after a clean stop: a route out of the domain: %+v", r)
		}
	}
	leaks("after a clean stop")
}

// route is one route of `ip -j route` as a process sees it.
type route struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
	Table   string `json:"table"`
}

// routesInside lists the routes of every table but local, both families,
// as `ip route` run by `tunroute exec` inside the domain shows them.
func (e *env) routesInside(domain string) []route {
	e.t.Helper()
	ipBin, err := lookProg("ip")
	if err != nil {
		e.t.Fatal(err)
	}
	var all []route
	for _, fam := range []string{"-4", "-6"} {
		out, code := e.exec(domain, nil, "", ipBin, "-j", fam, "route", "show", "table", "all")
		if code != 0 {
			e.t.Fatalf("ip route inside %s: exit %d\n%s", domain, code, out)
		}
		var rs []route
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			e.t.Fatalf("ip route inside %s: %v\n%s", domain, err, out)
		}
		for _, r := range rs {
			if r.Table == "local" || r.Dev == "lo" || isLinkLocal(r.Dst) || strings.HasPrefix(r.Dst, "ff00::") || strings.HasPrefix(r.Dst, "multicast") {
				continue
			}
			all = append(all, r)
		}
	}
	return all
}

func isLinkLocal(dst string) bool {
	p, err := netip.ParsePrefix(dst)
	return err == nil && p.Addr().IsLinkLocalUnicast()
}
