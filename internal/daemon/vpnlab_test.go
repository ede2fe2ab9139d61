package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// vpnWorld is the lab (client, isp, vpnserver, inet; internal/lab) with
// OpenVPN, whose client runs tunroute's hook as its scripts, the
// shipped config examples/openvpn-route-noexec.yaml (gateway redirect
// through the tunnel, kill switch), a counting table in isp that sorts
// what arrives from the client's uplink, and the daemon running on the
// client's namespace. Namespaces are tr-dm2-<short>-*.
type vpnWorld struct {
	*world // top is the lab's client namespace
	lab    *lab.Lab
	ovpn   *labtest.OpenVPN
	bin    string
	isp    string
	d      *Daemon
	reps   <-chan Repair
}

// The stream's destinations, in inet: one port for an ordinary socket
// (routed by the redirect into the tunnel), one for a socket bound to
// the uplink (SO_BINDTODEVICE eth0), which only the kill switch stops.
const (
	streamRoutedPort = 9999
	streamBoundPort  = 9998
	countTable       = "tr-dm2-count"
)

var streamDst = lab.InetEth4.Addr()

func newVPNWorld(t *testing.T, short string, opts Options) *vpnWorld {
	needRoot(t)
	if _, err := exec.LookPath("openvpn"); err != nil {
		t.Skip("needs openvpn")
	}
	bin, err := testns.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // OpenVPN's scripts read the config
	prefix := "tr-dm2-" + short + "-"
	if strings.HasPrefix(short, "tr-") {
		prefix = short + "-" // a test with names of its own
	}
	l := &lab.Lab{Prefix: prefix, RunDir: filepath.Join(dir, "lab")}
	for _, ns := range l.Namespaces() {
		exec.Command("ip", "netns", "del", ns).Run() // a killed run's leftovers
	}
	if err := l.Build(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Destroy(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	v := &vpnWorld{lab: l, bin: bin, isp: l.NS(lab.ISP),
		world: &world{tb: t, top: l.NS(lab.Client), dir: dir, runDir: filepath.Join(dir, "run"), cfgPath: filepath.Join(dir, "tunroute.yaml")}}
	ex, err := os.ReadFile(filepath.Join("..", "..", "examples", "openvpn-route-noexec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v.cfgPath, ex, 0o644); err != nil {
		t.Fatal(err)
	}
	hook := strings.Join([]string{bin, "--run-dir", v.runDir, "hook", "openvpn", "-c", v.cfgPath}, " ")
	if v.ovpn, err = labtest.SetupOpenVPN(l, labtest.OpenVPNConfig{Dir: dir, Hook: hook, Setenv: map[string]string{"TUNROUTE_VPN": "work"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.ovpn.Close)
	v.countingTable()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := v.ovpn.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	// The daemon starts first, as at boot (the kill switch is in place
	// before the VPN); then OpenVPN connects and its hook applies.
	opts.Log = testLog(t)
	opts.Listen = true // the hooks go through the daemon, as with `tunroute run`
	v.d, v.reps = v.daemonRun(opts)
	if err := v.ovpn.StartClient(ctx, true); err != nil {
		t.Fatalf("%v\n%s", err, v.ovpn.Client.LogTail())
	}
	v.waitInSync(10 * time.Second)
	return v
}

// waitInSync waits for a fresh plan to be empty.
func (v *vpnWorld) waitInSync(d time.Duration) {
	v.tb.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, plan := v.inSync()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			v.tb.Fatalf("not in sync:\n%s", plan)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countingTable sorts, in isp, before anything else, every packet that
// arrives from the client's uplink (c0): the tunnel's (OpenVPN's UDP to
// the server), each stream's, neighbour discovery, and the rest.
func (v *vpnWorld) countingTable() {
	v.tb.Helper()
	rules := fmt.Sprintf(`table inet %[1]s {
	chain pre {
		type filter hook prerouting priority -400;
		iifname "c0" ip daddr %[2]s udp dport %[3]d counter return comment "tunnel"
		iifname "c0" ip daddr %[4]s udp dport %[5]d counter return comment "stream routed"
		iifname "c0" ip daddr %[4]s udp dport %[6]d counter return comment "stream bound"
		iifname "c0" icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } counter return comment "neighbour discovery"
		iifname "c0" counter comment "other"
	}
}
`, countTable, lab.ServerEth4.Addr(), labtest.OpenVPNPort, streamDst, streamRoutedPort, streamBoundPort)
	cmd := exec.Command("ip", "netns", "exec", v.isp, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		v.tb.Fatalf("counting table: %v %s", err, out)
	}
}

var counterLine = regexp.MustCompile(`counter packets (\d+) bytes \d+ .*comment "([^"]+)"`)

// counts reads the counting table: packets by comment.
func (v *vpnWorld) counts() map[string]uint64 {
	v.tb.Helper()
	out, err := exec.Command("ip", "netns", "exec", v.isp, "nft", "list", "table", "inet", countTable).CombinedOutput()
	if err != nil {
		v.tb.Fatalf("reading the counting table: %v %s", err, out)
	}
	m := map[string]uint64{}
	for _, sm := range counterLine.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.ParseUint(sm[1], 10, 64)
		m[sm[2]] += n
	}
	return m
}

func diffCounts(a, b map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range b {
		d[k] = v - a[k]
	}
	return d
}

// stream sends UDP datagrams from the client every interval, through an
// ordinary socket and through one bound to the uplink, until stop is
// called; it returns how many of each the kernel accepted.
type stream struct {
	// ticks: each socket tried to send once; routed, bound: the sends
	// the kernel took (a send the kill switch drops fails with EPERM).
	ticks, routed, bound atomic.Uint64
	stop                 func()
}

func (v *vpnWorld) startStream(interval time.Duration) *stream {
	v.tb.Helper()
	var routed, bound *net.UDPConn
	err := lab.Do(v.top, func() error {
		var err error
		if routed, err = net.ListenUDP("udp4", nil); err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "eth0")
			})
			if err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", ":0")
		if err != nil {
			return err
		}
		bound = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		v.tb.Fatal(err)
	}
	s := &stream{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		payload := []byte("tr-dm2 stream")
		toRouted := net.UDPAddrFromAddrPort(netip.AddrPortFrom(streamDst, streamRoutedPort))
		toBound := net.UDPAddrFromAddrPort(netip.AddrPortFrom(streamDst, streamBoundPort))
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			s.ticks.Add(1)
			if _, err := routed.WriteToUDP(payload, toRouted); err == nil {
				s.routed.Add(1)
			}
			if _, err := bound.WriteToUDP(payload, toBound); err == nil {
				s.bound.Add(1)
			}
		}
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			routed.Close()
			bound.Close()
		})
	}
	v.tb.Cleanup(s.stop)
	return s
}

// TestFlushRulesetUnderStream: with the gateway redirect and the kill
// switch in force (OpenVPN up, the daemon running), 100 `nft flush
// ruleset` while the client sends a continuous stream: how many packets
// leave the uplink in clear while tunroute's table is gone, and how long
// each repair takes.
func TestFlushRulesetUnderStream(t *testing.T) {
	opts := Options{}
	if os.Getenv("TR_DM2_NOFIGHT") != "" {
		opts.FightAfter = 1 << 30
	}
	v := newVPNWorld(t, "tr-ok-fl", opts)
	const flushes = 100
	// On Linux >= 6.9 the daemon holds the kill switch's table after its
	// check (hold.go): the flushes skip it.
	held := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if held = v.d.FirewallHeld(); held {
			break
		}
	}
	supported, known := kernel.OwnedTablesSupported()
	if supported && !held {
		t.Fatal("the kernel has owned persistent tables but the daemon does not hold the kill switch's table")
	}
	t.Logf("kernel owned persistent tables: %v (known %v); the daemon holds the table: %v", supported, known, held)
	s := v.startStream(time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	c0 := v.counts()
	if c0["stream routed"] != 0 || c0["stream bound"] != 0 {
		t.Fatalf("packets in clear before any flush: %v", c0)
	}
	var lat []time.Duration
	survived := 0
	t0 := time.Now()
	for i := 0; i < flushes; i++ {
		drain(v.reps)
		v.sh("ip netns exec " + v.top + " nft flush ruleset")
		if held {
			if out, _ := exec.Command("ip", "netns", "exec", v.top, "nft", "list", "tables").Output(); strings.Contains(string(out), "table inet "+state.FirewallTable) {
				survived++
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		r := waitRepair(t, v.reps, "firewall")
		lat = append(lat, r.Latency)
		time.Sleep(100 * time.Millisecond) // the stream runs with the table back
	}
	elapsed := time.Since(t0)
	time.Sleep(200 * time.Millisecond)
	s.stop()
	c1 := v.counts()
	d := diffCounts(c0, c1)
	t.Logf("%d flushes in %v; stream: %d ticks (1 ms apart), sends taken by the kernel: %d routed, %d bound to the uplink",
		flushes, elapsed.Round(time.Millisecond), s.ticks.Load(), s.routed.Load(), s.bound.Load())
	var sum time.Duration
	if held {
		t.Logf("the held table survived %d of %d flushes", survived, flushes)
	} else {
		sorted := append([]time.Duration(nil), lat...)
		slices.Sort(sorted)
		for _, l := range lat {
			sum += l
		}
		t.Logf("repair latency of the flushes (event read -> kernel ack): p50 %.2f ms, p99 %.2f ms, max %.2f ms, sum %.1f ms",
			ms(pct(sorted, 50)), ms(pct(sorted, 99)), ms(sorted[len(sorted)-1]), ms(sum))
	}
	t.Logf("on the uplink during the flushes: tunnel %d, in clear: routed stream %d, bound stream %d, neighbour discovery %d, other %d",
		d["tunnel"], d["stream routed"], d["stream bound"], d["neighbour discovery"], d["other"])
	st := v.d.Status()
	t.Logf("daemon: repairs %v, fights %v", st.Repairs, st.Fights)
	if d["tunnel"] == 0 {
		t.Error("nothing went through the tunnel: the stream did not run")
	}
	if d["stream routed"] != 0 {
		t.Errorf("%d packets of an ordinary socket left in clear", d["stream routed"])
	}
	if d["other"] != 0 {
		t.Errorf("%d other packets left in clear", d["other"])
	}
	if held {
		// The table was never gone: nothing leaves in clear, not even a
		// socket bound to the uplink, and nothing needed repairing.
		if survived != flushes {
			t.Errorf("the held table was flushed %d times of %d", flushes-survived, flushes)
		}
		if d["stream bound"] != 0 {
			t.Errorf("%d datagrams of a socket bound to the uplink left in clear while the daemon held the table", d["stream bound"])
		}
		if n := st.Repairs["firewall"]; n != 0 {
			t.Errorf("the held table was repaired %d times", n)
		}
		return
	}
	// Without owned tables (Linux < 6.9), a socket bound to the uplink
	// is stopped by the kill switch only: while its table is gone (flush
	// to repair), every datagram leaves. The daemon shortens the window.
	// TR_DM2_STRICT=1 holds it to 0.
	if d["stream bound"] != 0 {
		msg := fmt.Sprintf("KNOWN LEAK (kernel < 6.9): %d datagrams of a socket bound to the uplink left in clear during the %d repair windows (%.1f ms in all)",
			d["stream bound"], flushes, ms(sum))
		if os.Getenv("TR_DM2_STRICT") != "" {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}
}
