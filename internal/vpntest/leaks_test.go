package vpntest

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
)

// leakRow is one scenario's result for the table TestMain prints.
type leakRow struct {
	kind, scenario string
	clear4, clear6 uint64 // packets that left the uplink in clear
	dns            uint64 // DNS queries that reached the ISP's resolver
	note           string
}

var (
	leakMu   sync.Mutex
	leakRows []leakRow
)

func recordLeak(r leakRow) {
	leakMu.Lock()
	defer leakMu.Unlock()
	leakRows = append(leakRows, r)
}

// printLeakTable prints the leak counts of every scenario run.
func printLeakTable(out io.Writer) {
	leakMu.Lock()
	defer leakMu.Unlock()
	if len(leakRows) == 0 {
		return
	}
	rows := append([]leakRow(nil), leakRows...)
	order := func(name string) int {
		for i, s := range scenarios {
			if s.name == name {
				return i
			}
		}
		return len(scenarios) // the control comes last
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].kind != rows[j].kind {
			return rows[i].kind < rows[j].kind
		}
		return order(rows[i].scenario) < order(rows[j].scenario)
	})
	fmt.Fprintf(out, "\nPackets that left the client's uplink in clear, per leak scenario (must be 0):\n")
	fmt.Fprintf(out, "%-8s %-26s %7s %7s %9s  %s\n", "vpn", "scenario", "IPv4", "IPv6", "DNS->ISP", "note")
	for _, r := range rows {
		fmt.Fprintf(out, "%-8s %-26s %7d %7d %9d  %s\n", r.kind, r.scenario, r.clear4, r.clear6, r.dns, r.note)
	}
}

// scenario is one way a VPN setup is known to leak. induce breaks
// something (and may try traffic itself, for a scenario in phases);
// after it the client tries to reach inet every way it can; restore
// brings the setup back for the next scenario.
type scenario struct {
	name    string
	induce  func(w *world, t *testing.T, try func(phase string))
	restore func(w *world, t *testing.T)
	// dns: also query the ISP's resolver (and the VPN's, which must work).
	dns bool
	// tunnelWorks: the tunnel still carries traffic during the scenario.
	tunnelWorks bool
}

var scenarios = []*scenario{
	{name: "dns-to-isp-resolver", dns: true, tunnelWorks: true,
		induce: func(w *world, t *testing.T, try func(string)) {}},
	{name: "uplink-gateway-changed", tunnelWorks: true, induce: gatewayChanged, restore: gatewayRestored},
	{name: "hostile-dhcp-routes", induce: hostileRoutes, restore: hostileRoutesRemoved},
	{name: "ipv6-enabled-on-uplink", induce: ipv6Enabled, restore: ipv6Restored},
	{name: "vpn-server-unreachable", induce: serverUnreachable, restore: serverReachable},
	{name: "daemon-sigkill", induce: daemonKilled, restore: restartClient},
	{name: "tunnel-device-deleted", induce: deviceDeleted, restore: restartClient},
}

// leaks runs each scenario and counts, on the isp, what the client sent
// out of its uplink in clear. A last run without the kill switch shows
// that the counting sees leaks when there are some.
func (w *world) leaks(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) { w.leak(t, s) })
	}
	t.Run("control-without-killswitch", w.control)
}

func (w *world) leak(t *testing.T, s *scenario) {
	w.ensureUp(t)
	t0 := time.Now()
	before := w.read(t)
	var tries []string
	try := func(phase string) {
		outs := reachInet(w.client)
		if s.dns {
			outs = append(outs, queryResolvers(w.client, ispResolver4, ispResolver6)...)
		}
		tries = append(tries, phase+":"+outcomes(outs))
		if s.tunnelWorks {
			// The first try is TCP over IPv4 to the echo server.
			if o := outs[0]; o.err != nil || o.saw != lab.ServerEth4.Addr() {
				t.Errorf("the tunnel must still work here: %v", o)
			}
		}
	}
	s.induce(w, t, try)
	try("during")
	if s.dns {
		o := udpTry(w.client, netip.AddrPortFrom(w.k.dns, 53), dnsQuery, true)
		if o.err != nil {
			t.Errorf("DNS to the VPN's resolver %s, which the kill switch allows: %v", w.k.dns, o.err)
		} else {
			tries = append(tries, "VPN resolver: "+o.String())
		}
	}
	d := w.read(t).sub(before)
	row := leakRow{kind: w.k.name, scenario: s.name,
		clear4: d[cClear4] + d[cSelected4] + d[cOptions4], clear6: d[cClear6] + d[cSelected6] + d[cRH6], dns: d[cDNS4] + d[cDNS6]}
	if n := d[cServer4] + d[cServer6]; n > 0 {
		row.note = fmt.Sprintf("%d non-transport packets to the VPN server", n)
	}
	recordLeak(row)
	t.Logf("%s (%v): counters %v\n  %s", s.name, time.Since(t0).Round(time.Millisecond), d, strings.Join(tries, "\n  "))
	if row.clear4 != 0 || row.clear6 != 0 {
		t.Errorf("LEAK: %d IPv4 and %d IPv6 packets left the client's uplink in clear", row.clear4, row.clear6)
	}
	if row.dns != 0 {
		t.Errorf("LEAK: %d DNS packets reached the ISP's resolver", row.dns)
	}
	if s.restore != nil {
		s.restore(w, t)
	}
}

// armed checks that, without the kill switch, the scenario would leak:
// the client's kernel routes inet's address out of the uplink.
func armed(w *world, t *testing.T, v6 bool) {
	t.Helper()
	dst := lab.InetEth4.Addr()
	if v6 {
		dst = lab.InetEth6.Addr()
	}
	if dev := w.routeDev(t, dst); dev != "eth0" {
		t.Errorf("scenario not armed: %s is routed to %s, not the uplink eth0", dst, dev)
	}
}

// The uplink's gateway moves (a new DHCP lease): a second isp address on
// the client's LAN becomes the default gateway.
var (
	newGateway4 = netip.MustParsePrefix("10.1.0.254/24")
	newGateway6 = netip.MustParsePrefix("2001:db8:1::fe/64")
)

func gatewayChanged(w *world, t *testing.T, _ func(string)) {
	ip(t, w.isp, "addr", "add", newGateway4.String(), "dev", "c0")
	ip(t, w.isp, "addr", "add", newGateway6.String(), "dev", "c0", "nodad")
	ip(t, w.client, "route", "replace", "default", "via", newGateway4.Addr().String(), "dev", "eth0")
	ip(t, w.client, "-6", "route", "replace", "default", "via", newGateway6.Addr().String(), "dev", "eth0")
}

func gatewayRestored(w *world, t *testing.T) {
	ip(t, w.client, "route", "replace", "default", "via", lab.ISPC04.Addr().String(), "dev", "eth0")
	ip(t, w.client, "-6", "route", "replace", "default", "via", lab.ISPC06.Addr().String(), "dev", "eth0")
	ip(t, w.isp, "addr", "del", newGateway4.String(), "dev", "c0")
	ip(t, w.isp, "addr", "del", newGateway6.String(), "dev", "c0")
}

// hostileRoutes: a rogue DHCP server (TunnelVision, CVE-2024-3661) pushes
// routes more specific than the tunnel's /1 routes via the LAN gateway.
var dhcpRoutes = []string{"0.0.0.0/2", "203.0.113.0/24", "::/2", "2001:db8:203::/64"}

func hostileRoutes(w *world, t *testing.T, _ func(string)) {
	for _, p := range dhcpRoutes {
		gw := lab.ISPC04.Addr()
		if strings.Contains(p, ":") {
			gw = lab.ISPC06.Addr()
		}
		ip(t, w.client, "route", "add", p, "via", gw.String(), "dev", "eth0")
	}
	armed(w, t, false)
	armed(w, t, true)
}

func hostileRoutesRemoved(w *world, t *testing.T) {
	for _, p := range dhcpRoutes {
		ip(t, w.client, "route", "del", p)
	}
}

// ipv6Enabled: IPv6 is turned off on the uplink, then on again with an
// address and a default route (an RA, a new lease) while tunroute does
// not run: IPv6 must not leave in clear.
func ipv6Enabled(w *world, t *testing.T, try func(string)) {
	ip(t, "", "netns", "exec", w.client, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
	try("IPv6 off on the uplink")
	ip(t, "", "netns", "exec", w.client, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")
	ip(t, w.client, "addr", "add", lab.ClientEth6.String(), "dev", "eth0", "nodad")
	ip(t, w.client, "-6", "route", "add", "default", "via", lab.ISPC06.Addr().String(), "dev", "eth0")
	if !w.k.tunnel6 {
		armed(w, t, true)
	}
}

// ipv6Restored applies the config again (a VPN hook or tunroute run
// would): turning IPv6 off on eth0 flushed every IPv6 route via eth0,
// tunroute's and the foreign table 51820's (which the test puts back, as
// its owner would).
func ipv6Restored(w *world, t *testing.T) {
	addForeign6Route(t, w.client)
	w.apply(t, w.cfg)
}

// serverUnreachable: the isp drops everything between the client and the
// VPN server. First the tunnel is still up (traffic vanishes in it);
// then the daemon notices and its hook withdraws the tunnel's routes.
func serverUnreachable(w *world, t *testing.T, try func(string)) {
	mark := w.vpn.mark()
	if err := w.ctr.block(); err != nil {
		t.Fatal(err)
	}
	try("server cut off, tunnel still up")
	if !clientWait(t, 15*time.Second, w.vpn.waitLost, mark, "noticed", "did not notice the server is gone") {
		return
	}
	if w.k.lostWithdraws {
		armed(w, t, false)
	} else {
		t.Logf("%s is still routed to %s", lab.InetEth4.Addr(), w.routeDev(t, lab.InetEth4.Addr()))
	}
}

func serverReachable(w *world, t *testing.T) {
	mark := w.vpn.mark()
	if err := w.ctr.unblock(); err != nil {
		t.Fatal(err)
	}
	clientWait(t, 10*time.Second, w.vpn.waitUp, mark, "reconnected by itself", "did not come back by itself through the kill switch")
}

// clientWait gives wait (the client daemon's waitUp or waitLost after
// mark) up to limit and logs how long it took, "the client DID after
// ...", or fails the test, "the client FAILED: ...", and reports false.
func clientWait(t *testing.T, limit time.Duration, wait func(context.Context, int64) error, mark int64, did, failed string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	if err := wait(ctx, mark); err != nil {
		t.Errorf("the client %s: %v", failed, err)
		return false
	}
	t.Logf("the client %s after %v", did, time.Since(start).Round(time.Millisecond))
	return true
}

// daemonKilled: the client daemon dies with SIGKILL: no down script
// runs, the tunnel device disappears with it.
func daemonKilled(w *world, t *testing.T, _ func(string)) {
	w.vpn.client().Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.linkGone(t, ctx, w.k.clientDev); err != nil {
		t.Fatal(err)
	}
	armed(w, t, false)
}

// deviceDeleted: someone deletes the tunnel device under the running
// daemon.
func deviceDeleted(w *world, t *testing.T, _ func(string)) {
	h := nl(t, w.client)
	defer h.Delete()
	l, err := h.LinkByName(w.k.clientDev)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(l); err != nil {
		t.Fatalf("delete %s: %v", w.k.clientDev, err)
	}
	armed(w, t, false)
}

// restartClient stops the client if it still runs (its down hooks run)
// and starts it again.
func restartClient(w *world, t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := w.vpn.restart(ctx, t); err != nil {
		t.Fatalf("restarting the client: %v", err)
	}
	t.Logf("client restarted and up in %v", time.Since(t0).Round(time.Millisecond))
}

// control repeats the hostile-route scenario with a config that has no
// kill switch: the counters must see the leak, or they prove nothing.
func (w *world) control(t *testing.T) {
	w.ensureUp(t)
	cfg := strings.Split(w.example, "killswitch:")[0] + selectBlock(w.k.tunnelID)
	path := filepath.Join(w.dir, "no-killswitch.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w.apply(t, path)
	defer w.apply(t, w.cfg)
	before := w.read(t)
	hostileRoutes(w, t, nil)
	outs := reachInet(w.client)
	hostileRoutesRemoved(w, t)
	d := w.read(t).sub(before)
	t.Logf("without the kill switch: counters %v%s", d, outcomes(outs))
	recordLeak(leakRow{kind: w.k.name, scenario: "(control: no kill switch)", clear4: d[cClear4], clear6: d[cClear6],
		note: "hostile routes again; must be > 0"})
	if d[cClear4] == 0 || d[cClear6] == 0 {
		t.Errorf("without the kill switch the hostile routes must leak, and the counters must see it: %v", d)
	}
}
