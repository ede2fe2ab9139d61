package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/engine"
)

// world is one test's namespaces: top (where tunroute works, with an
// uplink up0 to peer) and the domain d1 tunroute makes; all named
// tr-dn<pid>-<short>-*, removed when the test ends, pass or fail.
type world struct {
	tb                   testing.TB
	top, peer, d1        string
	dir, cfgPath, runDir string
}

const configText = `identities:
  - name: up
    device: up0
    gateway: auto
    table: 10
    priority: 5000
routes:
  - to: [198.51.100.0/24, 2001:db8:77::/48]
    via: up
killswitch: {}
domains:
  - name: {{D1}}
pipes:
  - name: trdn0
    a: {domain: host, address: 10.250.2.1/30}
    b: {domain: {{D1}}, address: 10.250.2.2/30, routes: [0.0.0.0/0]}
`

func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (creates network namespaces)")
	}
	for _, p := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(p); err != nil {
			tb.Skipf("needs %s", p)
		}
	}
}

func newWorld(tb testing.TB, short string) *world {
	needRoot(tb)
	p := fmt.Sprintf("tr-dn%d-%s-", os.Getpid(), short)
	if strings.HasPrefix(short, "tr-") {
		p = fmt.Sprintf("%s%d-", short, os.Getpid()) // a test with names of its own
	}
	w := &world{tb: tb, top: p + "top", peer: p + "peer", d1: p + "d1", dir: tb.TempDir()}
	w.runDir = filepath.Join(w.dir, "run")
	w.cfgPath = filepath.Join(w.dir, "tunroute.yaml")
	for _, ns := range []string{w.top, w.peer, w.d1} {
		exec.Command("ip", "netns", "del", ns).Run() // a killed run's leftovers
	}
	tb.Cleanup(w.cleanup)
	w.ip("", "netns", "add", w.top)
	w.ip("", "netns", "add", w.peer)
	w.ip(w.top, "link", "set", "lo", "up")
	w.ip(w.top, "link", "add", "up0", "type", "veth", "peer", "name", "up0p", "netns", w.peer)
	w.ip(w.top, "addr", "add", "192.0.2.2/24", "dev", "up0")
	w.ip(w.top, "addr", "add", "2001:db8:1::2/64", "dev", "up0", "nodad")
	w.ip(w.top, "link", "set", "up0", "up")
	w.ip(w.peer, "link", "set", "up0p", "up")
	w.ip(w.peer, "addr", "add", "192.0.2.1/24", "dev", "up0p")
	w.ip(w.peer, "addr", "add", "2001:db8:1::1/64", "dev", "up0p", "nodad")
	w.ip(w.top, "route", "add", "default", "via", "192.0.2.1")
	w.ip(w.top, "-6", "route", "add", "default", "via", "2001:db8:1::1")
	if err := os.WriteFile(w.cfgPath, []byte(strings.ReplaceAll(configText, "{{D1}}", w.d1)), 0o644); err != nil {
		tb.Fatal(err)
	}
	return w
}

func (w *world) engine() *engine.Engine { return engine.New(w.top, w.cfgPath, w.runDir) }

func (w *world) cleanup() {
	e := w.engine()
	if s, err := e.Observe(false); err == nil {
		if c, err := s.PlanDown(); err == nil {
			if _, err := s.Apply(c); err != nil {
				w.tb.Errorf("cleanup: down: %v", err)
			}
		}
		s.Close()
	}
	for _, ns := range []string{w.d1, w.top, w.peer} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				w.tb.Errorf("cleanup: ip netns del %s: %v %s", ns, err, out)
			}
		}
	}
}

// ip runs ip(8) in a namespace ("" for the test's own, only for
// `netns add`) and fails the test if it fails.
func (w *world) ip(ns string, args ...string) {
	w.tb.Helper()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		w.tb.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
	}
}

// sh runs a shell command line (ip, nft) as another program would.
func (w *world) sh(cmd string) {
	w.tb.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		w.tb.Fatalf("%s: %v %s", cmd, err, out)
	}
}

// inSync: a fresh plan (the engine as `tunroute plan` runs it) is empty.
func (w *world) inSync() (bool, string) {
	s, c, err := w.engine().PlanConfig(true)
	if err != nil {
		w.tb.Fatal(err)
	}
	defer s.Close()
	return c.Plan.Empty(), c.Plan.Text()
}

// daemonRun runs a daemon in the test process; repairs arrive on the
// returned channel.
func (w *world) daemonRun(opts Options) (*Daemon, <-chan Repair) {
	w.tb.Helper()
	reps := make(chan Repair, 1024)
	opts.Engine = w.engine()
	opts.OnRepair = func(r Repair) { reps <- r }
	ready := make(chan struct{})
	opts.Notify = func(s string) {
		if s == "READY=1" {
			select {
			case <-ready:
			default:
				close(ready)
			}
		}
	}
	d := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	w.tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			w.tb.Errorf("daemon: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		w.tb.Fatalf("daemon: %v", err)
	case <-time.After(20 * time.Second):
		w.tb.Fatal("daemon not ready in 20 s")
	}
	return d, reps
}

// testLog logs through t (debug with TR_DN_DEBUG=1).
func testLog(tb testing.TB) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("TR_DN_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: level}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
