package failovertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tunrouterun "github.com/tunroute/tunroute/internal/daemon"
	"github.com/tunroute/tunroute/internal/engine"
)

// TestDaemonFailsOver: `tunroute run` (the daemon, not the test's own
// loop) runs the health checks, moves the traffic to ISP 2 when ISP 1
// drops everything, shows the verdict in its status, and moves it back
// when ISP 1 heals.
func TestDaemonFailsOver(t *testing.T) {
	buildLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	arrivals, stop := server(t)
	defer stop()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tunroute.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(labConfig, "TIMEOUT", "300ms")), 0o644); err != nil {
		t.Fatal(err)
	}
	d := tunrouterun.New(tunrouterun.Options{Engine: engine.New(nsHost, cfgPath, filepath.Join(dir, "run"))})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	healthOf := func(id string) string {
		for _, h := range d.Status().Health {
			if h.Identity == id {
				return h.State
			}
		}
		return ""
	}
	for deadline := time.Now().Add(10 * time.Second); healthOf("isp1") != "up" || healthOf("isp2") != "up"; {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never judged both uplinks up: %+v", d.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sender(t, ctx)
	if _, ok := waitFor(arrivals, isp1Addr, time.Now().Add(5*time.Second)); !ok {
		t.Fatalf("no traffic through ISP 1 before the cut")
	}
	cut := time.Now()
	runAll(t, dropRule.cut)
	healed := false
	heal := func() {
		if !healed {
			healed = true
			runAll(t, dropRule.heal)
		}
	}
	defer heal()
	a, ok := waitForFresh(arrivals, isp2Addr, cut.Add(15*time.Second))
	if !ok {
		t.Fatalf("no traffic through ISP 2 within 15 s of the cut; daemon status:\n%s", statusText(d))
	}
	fmt.Printf("through tunroute run: ISP 1 drops everything, first packet through ISP 2 %.2fs after the cut\n", a.at.Sub(cut).Seconds())
	if got := healthOf("isp1"); got != "down" {
		t.Errorf("the daemon's status says isp1 is %q after the cut", got)
	}
	if !strings.Contains(statusText(d), "health isp1: down") {
		t.Errorf("status text:\n%s", statusText(d))
	}
	heal()
	if _, ok := waitForFresh(arrivals, isp1Addr, time.Now().Add(20*time.Second)); !ok {
		t.Fatalf("the traffic did not come back to ISP 1 after it healed; daemon status:\n%s", statusText(d))
	}
}

func statusText(d *tunrouterun.Daemon) string {
	st := d.Status()
	return st.Text()
}
