package failovertest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/health"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestProbeCPU measures the CPU the prober uses for 10 identities with 3
// targets each (icmp, tcp, dns) at interval 1 s: the prober runs alone in
// a child process (the servers answering it run here), for 10 s, and the
// child's user+system time is printed as a share of one core.
func TestProbeCPU(t *testing.T) {
	if os.Getenv("FO_CPU_CHILD") != "" {
		proberChild(t)
		return
	}
	buildLab(t)
	acceptAndCloseIn(t, nsNet, "203.0.113.1:443")
	dns := listenIn(t, nsNet, "203.0.113.1:53")
	defer dns.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := dns.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				buf[2] |= 0x80 // a response, whatever it says
				dns.WriteTo(buf[:n], from)
			}
		}
	}()
	// Inside the namespace (tunroute run in the namespace it manages, or
	// in the host's own), then from outside it (--netns: each probe
	// socket is made on a thread that enters the namespace).
	for _, inside := range []bool{true, false} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProbeCPU$", "-test.v")
		cmd.Env = append(os.Environ(), "FO_CPU_CHILD=outside")
		if inside {
			cmd = exec.Command("ip", "netns", "exec", nsHost, os.Args[0], "-test.run=^TestProbeCPU$", "-test.v")
			cmd.Env = append(os.Environ(), "FO_CPU_CHILD=inside")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		found := false
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "prober CPU") {
				fmt.Println(l)
				found = true
			}
		}
		if !found {
			t.Fatalf("child printed no figure:\n%s", out)
		}
	}
}

func proberChild(t *testing.T) {
	var probes []compile.Probe
	for i := 0; i < 10; i++ {
		dev, src := "eth0", "10.1.0.2"
		if i%2 == 1 {
			dev, src = "eth1", "10.2.0.2"
		}
		a := netip.MustParseAddr("203.0.113.1")
		// No mark: the device binding alone picks the uplink here (the
		// lab has no tunroute rules in this test).
		probes = append(probes, compile.Probe{Identity: fmt.Sprintf("id%d", i), Device: dev, Source4: netip.MustParseAddr(src),
			Health: config.Health{Interval: time.Second, Timeout: 500 * time.Millisecond, Down: 3, Up: 5, MinTargets: 3,
				Targets: []config.HealthTarget{{Kind: config.ProbeICMP, Addr: a}, {Kind: config.ProbeTCP, Addr: a, Port: 443}, {Kind: config.ProbeDNS, Addr: a, Port: 53}}}})
	}
	where := os.Getenv("FO_CPU_CHILD")
	ns := nsHost
	if where == "inside" {
		ns = ""
	}
	p := health.New(health.SocketProbe(ns), nil)
	p.Update(probes)
	before := testns.SelfCPU()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Start(ctx)
	<-ctx.Done()
	wall := time.Since(start)
	cpu := testns.SelfCPU() - before
	up := 0
	for _, s := range p.Status() {
		if s.State == "up" {
			up++
		}
	}
	if up != 10 {
		t.Errorf("%d of 10 identities up: %+v", up, p.Status())
	}
	fmt.Printf("prober CPU (%s the namespace): 10 identities x 3 targets (icmp, tcp, dns) at 1 s for %s: %s CPU, %.2f%% of one core\n",
		where, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds())
}
