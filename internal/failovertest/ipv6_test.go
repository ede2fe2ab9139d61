package failovertest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/health"
	"github.com/tunroute/tunroute/internal/testns"
)

// ipv6Setup gives the lab IPv6: each link a /64 of 2001:db8::/32 (no
// duplicate address detection, so the addresses work at once), the
// internet namespace the probe target 2001:db8::1 (ICMPv6 echo, and TCP
// 443 where the test listens), and the host's main table preferring ISP 2
// for IPv6 too: an IPv6 probe of ISP 1 that is not bound to it would be
// answered through ISP 2.
var ipv6Setup = slices.Concat(
	isp1.addressed("2001:db8:1::/64", "2001:db8:11::/64"), isp2.addressed("2001:db8:2::/64", "2001:db8:12::/64"),
	[]string{
		"-n " + nsNet + " addr add 2001:db8::1/128 dev lo nodad",
		"-n " + nsHost + " -6 route add default via 2001:db8:2::1 dev eth1 metric 100",
		"-n " + nsHost + " -6 route add default via 2001:db8:1::1 dev eth0 metric 200",
	},
)

// ipv6Config probes IPv6 targets only: an ISP whose IPv6 dies is judged
// down by its IPv6 probes, though its IPv4 still works.
const ipv6Config = `
identities:
  - name: isp1
    device: eth0
    gateway: [10.1.0.1, 2001:db8:1::1]
    health: {targets: [icmp 2001:db8::1, "tcp [2001:db8::1]:443"], interval: 1s, timeout: 300ms, down: 3, up: 5}
  - name: isp2
    device: eth1
    gateway: [10.2.0.1, 2001:db8:2::1]
    health: {targets: [icmp 2001:db8::1, "tcp [2001:db8::1]:443"], interval: 1s, timeout: 300ms, down: 3, up: 5}
groups:
  - name: uplinks
    failover: [isp1, isp2]
routes:
  - to: 198.51.100.0/24
    via: uplinks
killswitch:
  allow:
    - to: 198.51.100.0/24
`

// TestIPv6Probes: ISP 1 stops forwarding IPv6 only; isp1's IPv6 probes
// (ICMPv6 echo and TCP) detect it, the traffic moves to ISP 2, and the
// lying probe cannot happen over IPv6 either: isp1's probes never
// succeed while the target answers isp2's, and no packet from isp1's
// IPv6 address crosses ISP 2.
func TestIPv6Probes(t *testing.T) {
	buildLab(t)
	for _, c := range ipv6Setup {
		ipCmd(t, c)
	}
	for _, ns := range []string{nsISP1, nsISP2} {
		testns.Cmd(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	}
	acceptAndCloseIn(t, nsNet, "[2001:db8::1]:443")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrivals, stop := server(t)
	defer stop()
	d := startDaemonWith(t, ctx, ipv6Config)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if h := d.prober.Health(); h["isp1"] && h["isp2"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uplinks not judged up over IPv6: %+v", d.prober.Status())
		}
	}
	sender(t, ctx)
	if _, ok := waitFor(arrivals, isp1Addr, time.Now().Add(3*time.Second)); !ok {
		t.Fatalf("no traffic through ISP 1 before the cut")
	}
	testns.Cmd(t, "ip", "netns", "exec", nsISP2, "nft", "add table inet fo; add chain inet fo fw { type filter hook forward priority 0; }; add rule inet fo fw ip6 saddr 2001:db8:1::2 counter")
	cut := time.Now()
	testns.Cmd(t, "ip", "netns", "exec", nsISP1, "nft", "add table inet fo; add chain inet fo fw { type filter hook forward priority 0; }; add rule inet fo fw meta nfproto ipv6 drop")
	defer exec.Command("ip", "netns", "exec", nsISP1, "nft", "delete table inet fo").Run()
	a, ok := waitForFresh(arrivals, isp2Addr, cut.Add(15*time.Second))
	if !ok {
		t.Fatalf("no traffic through ISP 2 within 15 s of cutting ISP 1's IPv6; status %+v", d.prober.Status())
	}
	var why string
	for _, s := range d.prober.Status() {
		if s.Identity == "isp1" {
			why = s.Why
			if s.State != "down" {
				t.Errorf("isp1 is %s after its IPv6 died", s.State)
			}
		}
	}
	fmt.Printf("IPv6 probes: ISP 1 drops IPv6 only (IPv4 still forwarded); isp1 judged down (%s), first packet through ISP 2 %.2fs after the cut\n", why, a.at.Sub(cut).Seconds())
	// The lying probe over IPv6.
	probe := health.SocketProbe(nsHost)
	cp := d.currentProbes(t)
	if len(cp) != 2 || cp[0].Identity != "isp1" || !cp[0].Source6.IsValid() {
		t.Fatalf("probes %+v", cp)
	}
	// IPv4 still works through ISP 1 (a datagram from isp1's address,
	// which its rule sends by its table, arrives): only the IPv6 probes
	// could tell.
	drain(arrivals)
	dialIn(t, nsHost, func() {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("10.1.0.2")}, &net.UDPAddr{IP: net.ParseIP("198.51.100.10"), Port: 9000})
		if err != nil {
			t.Errorf("dial from isp1's address: %v", err)
			return
		}
		defer c.Close()
		for range 5 {
			c.Write([]byte("v4"))
			time.Sleep(20 * time.Millisecond)
		}
	})
	if _, ok := waitFor(arrivals, isp1Addr, time.Now().Add(2*time.Second)); !ok {
		t.Errorf("ISP 1's IPv4 is broken too: the test means nothing")
	}
	for i := 0; i < 10; i++ {
		for _, tg := range cp[0].Health.Targets {
			pctx, pc := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err1 := probe(pctx, &cp[0], tg)
			pc()
			pctx, pc = context.WithTimeout(ctx, 300*time.Millisecond)
			_, err2 := probe(pctx, &cp[1], tg)
			pc()
			if err1 == nil {
				t.Fatalf("a probe of isp1 (%s) succeeded though its IPv6 is dead (round %d)", tg, i)
			}
			if err2 != nil {
				t.Fatalf("isp2's probe %s failed: %v", tg, err2)
			}
		}
	}
	if out := testns.Cmd(t, "ip", "netns", "exec", nsISP2, "nft", "list chain inet fo fw"); !strings.Contains(out, "packets 0 bytes 0") {
		t.Errorf("packets from isp1's IPv6 address crossed ISP 2:\n%s", out)
	}
	fmt.Printf("lying probe (IPv6): 10 rounds of isp1's ICMPv6 and TCP probes after the cut, 0 answered; isp2's answered; 0 packets from 2001:db8:1::2 through ISP 2\n")
}
