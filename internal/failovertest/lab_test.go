package failovertest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/health"
	"github.com/tunroute/tunroute/internal/testns"
)

// The lab: the host (tr-fo2-h) has eth0 to ISP 1 (tr-fo2-i1) and eth1 to
// ISP 2 (tr-fo2-i2); both ISPs reach "the internet" (tr-fo2-n), which holds
// the probe target 203.0.113.1 and a server 198.51.100.10. The host's
// main table prefers ISP 2 for everything, so a probe of ISP 1 that is
// not bound to it would be answered through ISP 2: the lying probe.
const (
	nsHost = "tr-fo2-h"
	nsISP1 = "tr-fo2-i1"
	nsISP2 = "tr-fo2-i2"
	nsNet  = "tr-fo2-n"
)

var setup = slices.Concat(
	[]string{"netns add " + nsHost, "netns add " + nsISP1, "netns add " + nsISP2, "netns add " + nsNet},
	isp1.links(), isp2.links(),
	isp1.addressed("10.1.0.0/24", "10.11.0.0/30"), isp2.addressed("10.2.0.0/24", "10.12.0.0/30"),
	[]string{
		"-n " + nsNet + " addr add 203.0.113.1/32 dev lo", "-n " + nsNet + " addr add 198.51.100.10/32 dev lo",
		"-n " + nsHost + " link set lo up", "-n " + nsNet + " link set lo up",
		"-n " + nsHost + " route add default via 10.2.0.1 dev eth1 metric 100",
		"-n " + nsHost + " route add default via 10.1.0.1 dev eth0 metric 200",
	},
)

// relay is a namespace between the host and the internet (an ISP, or a
// stand-in VPN server): a veth from the host's hostDev to its h0, and one
// from its up0 to the internet's netDev.
type relay struct{ ns, hostDev, netDev string }

var (
	isp1 = relay{nsISP1, "eth0", "i1"}
	isp2 = relay{nsISP2, "eth1", "i2"}
)

// links are the ip commands that make the relay's links and set them up;
// its namespace, the host's and the internet's exist.
func (r relay) links() []string {
	return []string{
		"-n " + nsHost + " link add " + r.hostDev + " type veth peer name h0 netns " + r.ns,
		"-n " + r.ns + " link add up0 type veth peer name " + r.netDev + " netns " + nsNet,
		"-n " + nsHost + " link set " + r.hostDev + " up", "-n " + nsNet + " link set " + r.netDev + " up",
		"-n " + r.ns + " link set lo up", "-n " + r.ns + " link set h0 up", "-n " + r.ns + " link set up0 up",
	}
}

// addressed are the ip commands that number the relay's links, the one
// to the host from hostNet and the one to the internet from upNet (the
// relay takes the first address of each, the host and the internet the
// second), and route the relay's traffic on to the internet and the
// internet's to hostNet back through the relay. IPv6 addresses skip
// duplicate address detection, so that they work at once.
func (r relay) addressed(hostNet, upNet string) []string {
	host, up := netip.MustParsePrefix(hostNet), netip.MustParsePrefix(upNet)
	relayHost, relayUp := host.Addr().Next(), up.Addr().Next()
	in := func(a netip.Addr, p netip.Prefix) string { return netip.PrefixFrom(a, p.Bits()).String() }
	family, opts := "", ""
	if host.Addr().Is6() {
		family, opts = " -6", " nodad"
	}
	return []string{
		"-n " + nsHost + " addr add " + in(relayHost.Next(), host) + " dev " + r.hostDev + opts,
		"-n " + r.ns + " addr add " + in(relayHost, host) + " dev h0" + opts,
		"-n " + r.ns + " addr add " + in(relayUp, up) + " dev up0" + opts,
		"-n " + nsNet + " addr add " + in(relayUp.Next(), up) + " dev " + r.netDev + opts,
		"-n " + r.ns + family + " route add default via " + relayUp.Next().String(),
		"-n " + nsNet + family + " route add " + host.String() + " via " + relayUp.String(),
	}
}

const labConfig = `
identities:
  - name: isp1
    device: eth0
    gateway: 10.1.0.1
    health: {targets: [icmp 203.0.113.1], interval: 1s, timeout: TIMEOUT, down: 3, up: 5}
  - name: isp2
    device: eth1
    gateway: 10.2.0.1
    health: {targets: [icmp 203.0.113.1], interval: 1s, timeout: TIMEOUT, down: 3, up: 5}
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

func ipCmd(t *testing.T, args string) {
	testns.Cmd(t, append([]string{"ip"}, strings.Fields(args)...)...)
}

func buildLab(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, p := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s", p)
		}
	}
	for _, ns := range []string{nsHost, nsISP1, nsISP2, nsNet} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Fatalf("namespace %s exists (an earlier run's?); remove it with ip netns del", ns)
		}
	}
	t.Cleanup(func() {
		for _, ns := range []string{nsHost, nsISP1, nsISP2, nsNet} {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, c := range setup {
		ipCmd(t, c)
	}
	for _, ns := range []string{nsISP1, nsISP2} {
		testns.Cmd(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
}

// daemon is what `tunroute run` does with the prober, in small: apply
// once, start the prober with the compiled probes, and re-plan and apply
// with the prober's Health() whenever an identity changes state.
type daemon struct {
	t      *testing.T
	e      *engine.Engine
	prober *health.Prober
	mu     sync.Mutex
	// applied records when each apply after a change finished.
	applied []time.Time
	// forget: run health.Replan, which forgets the abandoned identities'
	// connections (false: the control, which does not); forgotten counts
	// the switches that abandoned an identity.
	forget    bool
	forgotten uint
	last      *compile.System
	// closed: the test is over; an apply a late change starts does
	// nothing (its run directory is being removed).
	closed bool
}

func (d *daemon) apply() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	if !d.forget {
		// The control: everything Replan does but forgetting.
		return d.applyWithoutForgetting()
	}
	start := time.Now()
	res, err := health.Replan(d.e, d.prober, d.last)
	if err != nil {
		return err
	}
	d.applied = append(d.applied, time.Now())
	if gone := health.AbandonedByNamespace(d.last, res); len(gone) > 0 {
		d.forgotten++ // Replan forgot them; the count is of switches here
	}
	d.last = res
	if testing.Verbose() {
		fmt.Printf("replan: %s\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (d *daemon) applyWithoutForgetting() error {
	s, err := d.e.Observe(false)
	if err != nil {
		return err
	}
	defer s.Close()
	cfg, err := d.e.LoadConfig()
	if err != nil {
		return err
	}
	f, err := d.e.LoadFacts()
	if err != nil {
		return err
	}
	f.Health = d.prober.Health()
	c, err := s.Plan(cfg, f)
	if err != nil {
		return err
	}
	if _, err := s.Apply(c); err != nil {
		return err
	}
	d.prober.Update(c.Compiled().Probes)
	d.applied = append(d.applied, time.Now())
	d.last = c.System
	return nil
}

func startDaemon(t *testing.T, ctx context.Context, timeout string) *daemon {
	return startDaemonWith(t, ctx, strings.ReplaceAll(labConfig, "TIMEOUT", timeout))
}

func startDaemonWith(t *testing.T, ctx context.Context, config string) *daemon {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tunroute.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, e: engine.New(nsHost, cfgPath, filepath.Join(dir, "run")), prober: health.New(health.SocketProbe(nsHost), nil), forget: true}
	// Before the run directory is removed (cleanups run last first): wait
	// for an apply in flight, and let none start.
	t.Cleanup(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
	})
	d.prober.OnChange = func(id string, s health.State) {
		// After the test's end (ctx done) its run directory is gone.
		if err := d.apply(); err != nil && ctx.Err() == nil {
			t.Errorf("apply after %s went %s: %v", id, s, err)
		}
	}
	if err := d.apply(); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	d.prober.Start(ctx)
	// The passive signal: a link changing state re-plans at once (compile
	// passes over a member whose device is down or has no carrier).
	h, err := netns.GetFromName(nsHost)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links := make(chan netlink.LinkUpdate, 64)
	if err := netlink.LinkSubscribeAt(h, links, ctx.Done()); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range links {
			for len(links) > 0 {
				<-links
			}
			if err := d.apply(); err != nil && ctx.Err() == nil {
				t.Errorf("apply after a link change: %v", err)
			}
		}
	}()
	return d
}

// arrival is a datagram the server received: when, and from which source
// address (10.1.0.2 through ISP 1, 10.2.0.2 through ISP 2).
type arrival struct {
	at  time.Time
	src netip.Addr
}

// server listens on 198.51.100.10:9000 in the internet namespace.
func server(t *testing.T) (<-chan arrival, func()) {
	conn := listenIn(t, nsNet, "198.51.100.10:9000")
	ch := make(chan arrival, 10000)
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := conn.ReadFrom(buf)
			if err != nil {
				close(ch)
				return
			}
			a, _ := netip.AddrFromSlice(from.(*net.UDPAddr).IP)
			select {
			case ch <- arrival{time.Now(), a.Unmap()}:
			default:
			}
		}
	}()
	return ch, func() { conn.Close() }
}

// listenIn opens a UDP socket inside a namespace (on a thread that
// entered it and is never reused).
func listenIn(t *testing.T, ns, addr string) net.PacketConn {
	return openIn(t, ns, func() (net.PacketConn, error) { return net.ListenPacket("udp", addr) })
}

// sender sends a datagram to the server every 5 ms from the host, with
// no source address of its own: each one takes the route (and its source)
// the host has at that moment.
func sender(t *testing.T, ctx context.Context) {
	conn := listenIn(t, nsHost, "0.0.0.0:0")
	to := &net.UDPAddr{IP: net.ParseIP("198.51.100.10"), Port: 9000}
	go func() {
		defer conn.Close()
		every5ms(ctx, func() { conn.WriteTo([]byte("x"), to) }) // errors while re-routing are expected
	}()
}

// every5ms calls send every 5 ms until ctx ends: the steady stream of
// datagrams whose arrivals tell which way the traffic goes.
func every5ms(ctx context.Context, send func()) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		send()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func waitFor(ch <-chan arrival, src netip.Addr, until time.Time) (arrival, bool) {
	for {
		select {
		case a, ok := <-ch:
			if !ok {
				return arrival{}, false
			}
			if a.src == src {
				return a, true
			}
		case <-time.After(time.Until(until)):
			return arrival{}, false
		}
	}
}

// drain forgets the arrivals already queued: packets in flight before
// the change the caller just made.
func drain(ch <-chan arrival) {
	for len(ch) > 0 {
		<-ch
	}
}

// waitForFresh waits for an arrival from src sent after the change the
// caller just made (what was queued before is dropped first).
func waitForFresh(ch <-chan arrival, src netip.Addr, until time.Time) (arrival, bool) {
	drain(ch)
	return waitFor(ch, src, until)
}

var (
	isp1Addr = netip.MustParseAddr("10.1.0.2")
	isp2Addr = netip.MustParseAddr("10.2.0.2")
)

// TestUplinkCut: ISP 1 starts dropping everything (a drop rule in its
// namespace; its link to the host stays up, so only the probes can tell).
// The prober marks isp1 down after `down` rounds, the engine re-plans
// with the new health and the traffic moves to ISP 2. Prints the time
// from the cut to the first packet through ISP 2. Then the lying probe:
// while ISP 1 is dead, isp1's probes never succeed, though the target
// answers through ISP 2, and none of them crosses ISP 2.
func TestUplinkCut(t *testing.T) {
	for _, c := range []struct {
		kind    cutKind
		timeout string
	}{{dropRule, "1s"}, {dropRule, "300ms"}, {linkDown, "300ms"}, {blackhole, "300ms"}} {
		t.Run(c.kind.name+" timeout "+c.timeout, func(t *testing.T) { uplinkCut(t, c.kind, c.timeout) })
	}
}

// cutKind is a way ISP 1 fails, and how it heals.
type cutKind struct {
	name      string
	cut, heal [][]string
}

var (
	// 100% loss: ISP 1 drops everything it should forward; its link to
	// the host stays up, so only the probes can tell.
	dropRule = cutKind{"drop rule", [][]string{{"ip", "netns", "exec", nsISP1, "nft", "add table inet fo; add chain inet fo fw { type filter hook forward priority 0; policy drop; }"}},
		[][]string{{"ip", "netns", "exec", nsISP1, "nft", "delete table inet fo"}}}
	// The link to ISP 1 goes down (the host's eth0 loses its carrier).
	linkDown = cutKind{"link down", [][]string{{"ip", "-n", nsISP1, "link", "set", "h0", "down"}},
		[][]string{{"ip", "-n", nsISP1, "link", "set", "h0", "up"}}}
	// ISP 1's gateway blackholes everything beyond it.
	blackhole = cutKind{"gateway blackholed", [][]string{{"ip", "-n", nsISP1, "route", "replace", "blackhole", "default"}},
		[][]string{{"ip", "-n", nsISP1, "route", "replace", "default", "via", "10.11.0.2"}}}
)

func uplinkCut(t *testing.T, kind cutKind, timeout string) {
	buildLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrivals, stop := server(t)
	defer stop()
	d := startDaemon(t, ctx, timeout)

	// Both uplinks judged up, the traffic on ISP 1.
	deadline := time.Now().Add(5 * time.Second)
	for h := d.prober.Health(); !(h["isp1"] && h["isp2"]); h = d.prober.Health() {
		if time.Now().After(deadline) {
			t.Fatalf("uplinks not judged up: %v %+v", h, d.prober.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sender(t, ctx)
	if _, ok := waitFor(arrivals, isp1Addr, time.Now().Add(3*time.Second)); !ok {
		t.Fatalf("no traffic through ISP 1 before the cut")
	}

	// The kill switch allows exactly the probes: isp2's echo of the same
	// target from the same address and device, without the probe's mark,
	// is dropped (the marked one, the control, is answered).
	{
		probe := health.SocketProbe(nsHost)
		marked := d.currentProbes(t)[1]
		unmarked := marked
		unmarked.Mark = 0
		target := marked.Health.Targets[0]
		for _, c := range []struct {
			p    *healthProbe
			pass bool
		}{{&marked, true}, {&unmarked, false}} {
			pctx, pc := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := probe(pctx, c.p, target)
			pc()
			if (err == nil) != c.pass {
				t.Errorf("echo of %s from isp2 with mark 0x%x: error %v, want answered %v", target, c.p.Mark, err, c.pass)
			}
		}
	}

	// Count what crosses ISP 2 from isp1's address from now on.
	testns.Cmd(t, "ip", "netns", "exec", nsISP2, "nft", "add table inet fo; add chain inet fo fw { type filter hook forward priority 0; }; add rule inet fo fw ip saddr 10.1.0.2 counter")
	cut := time.Now()
	runAll(t, kind.cut)
	// Drain what was in flight before the cut.
	a, ok := waitForFresh(arrivals, isp2Addr, cut.Add(15*time.Second))
	if !ok {
		t.Fatalf("no traffic through ISP 2 within 15 s of the cut; status %+v", d.prober.Status())
	}
	if kind.name == linkDown.name {
		// The carrier is gone: the link event re-planned before any
		// probe could time out.
		fmt.Printf("uplink cut (%s at ISP 1): moved by the passive signal (eth0 lost its carrier), first packet through ISP 2 %.2fs after the cut\n",
			kind.name, a.at.Sub(cut).Seconds())
		// Let the prober reach its verdict too, for the recovery below.
		for deadline := time.Now().Add(5 * time.Second); d.prober.Health()["isp1"] && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
	}
	st := d.prober.Status()
	var downAt time.Time
	for _, s := range st {
		if s.Identity == "isp1" {
			downAt = s.LastChange
			if s.State != "down" {
				t.Errorf("isp1 is %s after the cut", s.State)
			}
		}
	}
	if kind.name != linkDown.name {
		fmt.Printf("uplink cut (%s at ISP 1), interval 1s timeout %s down 3: isp1 judged down %.2fs after the cut, first packet through ISP 2 %.2fs after the cut\n",
			kind.name, timeout, downAt.Sub(cut).Seconds(), a.at.Sub(cut).Seconds())
	}
	// The verdict comes with the third failed round: at most interval*down
	// plus one timeout after the cut (a round may start just before it);
	// the apply adds little. Not a timing assertion on a shared machine: a
	// generous bound that only catches a broken detection.
	if limit := 3*time.Second + 2*time.Second; a.at.Sub(cut) > limit {
		t.Errorf("switch took %s, want well under %s", a.at.Sub(cut), limit)
	}

	// The lying probe: the target answers through ISP 2 (isp2's probe),
	// but isp1's never succeeds.
	probe := health.SocketProbe(nsHost)
	st2 := d.prober.Status()
	for _, s := range st2 {
		if s.Identity == "isp2" && s.State != "up" {
			t.Fatalf("isp2 is %s: the target must answer through ISP 2 for this test to mean anything", s.State)
		}
	}
	cp := d.currentProbes(t)
	for i := 0; i < 10; i++ {
		pctx, pc := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err1 := probe(pctx, &cp[0], cp[0].Health.Targets[0])
		pc()
		pctx, pc = context.WithTimeout(ctx, 300*time.Millisecond)
		_, err2 := probe(pctx, &cp[1], cp[1].Health.Targets[0])
		pc()
		if err1 == nil {
			t.Fatalf("a probe of dead isp1 succeeded (round %d)", i)
		}
		if err2 != nil {
			t.Fatalf("isp2's probe of the same target failed: %v", err2)
		}
	}
	if out := testns.Cmd(t, "ip", "netns", "exec", nsISP2, "nft", "list chain inet fo fw"); !strings.Contains(out, "packets 0 bytes 0") {
		t.Errorf("packets from isp1's address crossed ISP 2:\n%s", out)
	}
	fmt.Printf("lying probe: 10 probes of isp1 after the cut, 0 answered; isp2's 10 probes of the same target answered; 0 packets from 10.1.0.2 through ISP 2\n")

	// Recovery: ISP 1 answers again; the traffic returns only after `up`
	// (5) good rounds in a row.
	healed := time.Now()
	runAll(t, kind.heal)
	back, ok := waitForFresh(arrivals, isp1Addr, healed.Add(15*time.Second))
	if !ok {
		t.Fatalf("no traffic back through ISP 1 within 15 s; status %+v", d.prober.Status())
	}
	// Five good rounds take four intervals from the first one's start
	// (which may be a little before the heal, its probe passing after).
	if took := back.at.Sub(healed); took < 3500*time.Millisecond {
		t.Errorf("traffic back on ISP 1 %s after it healed: before 5 good rounds at 1 s could pass", took)
	}
	for _, s := range d.prober.Status() {
		if s.Identity == "isp1" && (s.State != "up" || s.Why != "5 good rounds in a row") {
			t.Errorf("isp1 after healing: %s, %q", s.State, s.Why)
		}
	}
	fmt.Printf("recovery (up 5): first packet through ISP 1 again %.2fs after it healed\n", back.at.Sub(healed).Seconds())
}

// currentSystemProbes are the probes of every namespace the last compile
// asked for, as the prober runs them.
func (d *daemon) currentSystemProbes(t *testing.T) []healthProbe {
	return health.SystemProbes(d.currentPlan(t).System)
}

// currentProbes are the probes the last compile asked for, isp1's first.
func (d *daemon) currentProbes(t *testing.T) []healthProbe {
	return d.currentPlan(t).Compiled().Probes
}

// currentPlan is what the daemon's engine would do now from its config,
// facts and the kernel as observed.
func (d *daemon) currentPlan(t *testing.T) *engine.Change {
	t.Helper()
	s, err := d.e.Observe(false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg, err := d.e.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.e.LoadFacts()
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Plan(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
