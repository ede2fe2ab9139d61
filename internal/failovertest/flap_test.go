package failovertest

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// routeWatch counts the kernel's notifications of tunroute's route to
// 198.51.100.0/24 in the host namespace (`ip monitor route`): each one
// is a change of the path the traffic takes.
type routeWatch struct {
	mu    sync.Mutex
	lines []string
	cmd   *exec.Cmd
}

func watchRoutes(t *testing.T) *routeWatch {
	w := &routeWatch{cmd: exec.Command("ip", "-n", nsHost, "monitor", "route")}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.Contains(l, "198.51.100.0/24") && strings.Contains(l, "proto 116") {
				w.mu.Lock()
				w.lines = append(w.lines, time.Now().Format("15:04:05.000")+" "+l)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *routeWatch) count() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines), append([]string(nil), w.lines...)
}

// TestFlappingLink: ISP 1's link goes down and up every 2 s for 60 s (30 s
// with -short). The traffic leaves ISP 1 at the first fall and the
// routing does not follow the flapping: each carrier loss is a fall of
// isp1 (hysteresis: `up` good rounds to come back; damping: repeated
// falls hold it down), so the kernel's route changes stay within what
// the damping allows (one away, none back while it flaps), and it comes
// back once the link is calm. Prints the counts the kernel reported.
func TestFlappingLink(t *testing.T) {
	buildLab(t)
	flapFor := 60 * time.Second
	if testing.Short() {
		flapFor = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := startDaemon(t, ctx, "300ms")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if h := d.prober.Health(); h["isp1"] && h["isp2"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uplinks not judged up: %+v", d.prober.Status())
		}
	}
	w := watchRoutes(t)
	time.Sleep(500 * time.Millisecond) // the monitor is listening
	defer exec.Command("ip", "-n", nsISP1, "link", "set", "h0", "up").Run()
	start := time.Now()
	flaps := 0
	for time.Since(start) < flapFor {
		testns.Cmd(t, "ip", "-n", nsISP1, "link", "set", "h0", "down")
		time.Sleep(time.Second)
		testns.Cmd(t, "ip", "-n", nsISP1, "link", "set", "h0", "up")
		flaps++
		time.Sleep(time.Second)
	}
	during, lines := w.count()
	var isp1 string
	for _, s := range d.prober.Status() {
		if s.Identity == "isp1" {
			isp1 = fmt.Sprintf("%s, %d state changes, suppressed %v (%s)", s.State, s.Changes, s.Suppressed, s.Why)
		}
	}
	fmt.Printf("flapping link: ISP 1's link down 1 s / up 1 s, %d times in %s: the link changed state %d times, the kernel's route %d times; isp1 %s\n",
		flaps, flapFor.Round(time.Second), 2*flaps, during, isp1)
	for _, l := range lines {
		t.Logf("route change: %s", l)
	}
	if during > 2 {
		t.Errorf("the routing flapped with the link: %d route changes in %s (damping allows one away, at most one back)", during, flapFor)
	}
	// Calm again: the traffic comes back to ISP 1 once the damping lets it.
	calm := time.Now()
	for deadline := calm.Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if strings.Contains(testns.Cmd(t, "ip", "-n", nsHost, "route", "show", "198.51.100.0/24"), "dev eth0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the route never came back to ISP 1 after the link calmed; prober %+v", d.prober.Status())
		}
	}
	total, _ := w.count()
	fmt.Printf("flapping link: back on ISP 1 %.1fs after the link calmed (%d route changes in all)\n", time.Since(calm).Seconds(), total)
}
