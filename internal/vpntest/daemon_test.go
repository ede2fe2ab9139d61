package vpntest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/daemon"
	"github.com/tunroute/tunroute/internal/labtest"
)

// The same lab with `tunroute run` up in the client's namespace: the VPN
// daemon's hooks hand their calls to it over its socket, and it applies
// them. The tunnel must carry the traffic as without it, hostile
// environments must be refused by the hook itself (the daemon never
// hears of them), and the hook's latency is printed with and without it.

func TestThroughDaemon(t *testing.T) {
	t.Parallel()
	eachKind(t, runThroughDaemon)
}

// hookLatencyRuns is how many hook calls each way the latency figures
// are made of.
const hookLatencyRuns = 30

func runThroughDaemon(t *testing.T, k *kind) {
	// A lab of its own: TestVPN's runs go beside it with the kind's own
	// prefix.
	kd := *k
	kd.short += "d"
	w := newWorld(t, &kd)
	w.fuzzRuns = 40 // TestVPN tries more
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w.apply(t, w.cfg)
	run := w.startRun(t)

	if err := w.vpn.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.vpn.StartClient(ctx, true); err != nil {
		t.Fatal(err)
	}
	w.settle()
	st := w.runStatus(t)
	if st.Hooks == 0 {
		t.Fatalf("the %s client is up, but no hook went through tunroute run:\n%s\n--- run's log ---\n%s", k.name, st.Text(), run.LogTail())
	}
	t.Logf("through tunroute run: %d hooks, the last: %s", st.Hooks, st.LastHook)
	t.Run("FullTunnel", w.fullTunnel)
	t.Run("Selectors", w.selectors)

	// A reconnect: the down hooks and the up hooks go through it too.
	before := st.Hooks
	if err := w.vpn.restart(ctx, t); err != nil {
		t.Fatal(err)
	}
	w.ensureUp(t)
	if st = w.runStatus(t); st.Hooks <= before {
		t.Errorf("the reconnect's hooks did not go through tunroute run: %d hooks before, %d after", before, st.Hooks)
	}
	t.Run("FullTunnelAfterReconnect", w.fullTunnel)

	// Hostile environments are refused by the hook: none reaches the
	// daemon (but the VPN daemon's own calls meanwhile).
	before, mark := st.Hooks, w.vpn.mark()
	t.Run("HookFuzz", w.hookFuzz)
	if st = w.runStatus(t); st.Hooks != before && !(k.name == "tinc" && w.vpn.mark() != mark) {
		t.Errorf("%d calls of the fuzz reached tunroute run; a hook must refuse a bad environment itself", st.Hooks-before)
	}
	if !st.InSync || st.LastError != "" {
		t.Errorf("tunroute run after the hooks:\n%s", st.Text())
	}
	log := readFile(run.Log)
	if strings.Contains(log, "hook failed") || !strings.Contains(log, "msg=hook") {
		t.Errorf("tunroute run's log:\n%s", run.LogTail())
	}
	w.ensureUp(t)
	w.hookLatency(t, run)
}

// startRun starts `tunroute run` in the client's namespace, as systemd
// would, and waits for its socket.
func (w *world) startRun(t *testing.T) *labtest.Daemon {
	t.Helper()
	d, err := labtest.StartDaemon("tunroute run", w.client, []string{w.bin, "--run-dir", w.runDir, "run", "-c", w.cfg},
		[]string{"PATH=" + labtest.DaemonPATH}, filepath.Join(w.dir, "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(5 * time.Second) })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := daemon.Ask(w.runDir, w.client, "status")
		if err == nil {
			return d
		}
		if d.Exited() || time.Now().After(deadline) {
			t.Fatalf("tunroute run does not answer: %v\n%s", err, d.LogTail())
		}
	}
}

func (w *world) runStatus(t *testing.T) *daemon.Status {
	t.Helper()
	st, err := daemon.Ask(w.runDir, w.client, "status")
	if err != nil {
		t.Fatalf("tunroute run's status: %v", err)
	}
	return st
}

// hookLatency times the `tunroute hook` process for the call the VPN
// daemon makes when its connection is up (the same facts again: the
// plan writes the facts file), through tunroute run, then, once it is
// stopped, by itself. Figures, not a test: `go test ./internal/vpntest
// -run ThroughDaemon -v` prints them.
func (w *world) hookLatency(t *testing.T, run *labtest.Daemon) {
	env, args := envList(openvpnEnv("route-up")), []string{"openvpn"}
	if w.k.name == "tinc" {
		env, args = envList(tincEnv("host-up")), []string{"tinc", "host-up"}
	}
	time1 := func() (time.Duration, error) {
		t0 := time.Now()
		out, code := w.hook(t, env, args...)
		d := time.Since(t0)
		if code != 0 {
			return d, fmt.Errorf("exit %d: %s", code, out)
		}
		return d, nil
	}
	series := func(what string) []time.Duration {
		var ds []time.Duration
		for i := 0; i < hookLatencyRuns; i++ {
			d, err := time1()
			if err != nil {
				t.Fatalf("hook %s: %v", what, err)
			}
			ds = append(ds, d)
		}
		return ds
	}
	hooks0 := w.runStatus(t).Hooks
	through := series("through tunroute run")
	if n := w.runStatus(t).Hooks - hooks0; n < hookLatencyRuns {
		t.Errorf("%d of %d calls went through tunroute run", n, hookLatencyRuns)
	}
	inRun := tookInLog(readFile(run.Log), hookLatencyRuns)
	if !run.Stop(5 * time.Second) {
		t.Errorf("tunroute run did not stop on SIGTERM")
	}
	if _, err := daemon.Ask(w.runDir, w.client, "status"); !errors.Is(err, daemon.ErrNotRunning) {
		t.Fatalf("tunroute run stopped, yet: %v", err)
	}
	direct := series("by itself")
	t.Logf("%s hook latency (the tunroute hook process, %d calls each, lab config %s): through tunroute run %s (of which recording, planning and applying in the daemon %s); by itself %s",
		w.k.name, hookLatencyRuns, w.k.example, figures(through), figures(inRun), figures(direct))
	if _, err := os.Stat(daemon.SocketPath(w.runDir, w.client)); err == nil {
		t.Errorf("tunroute run left its socket behind")
	}
}

// tookInLog reads the last n hook durations (took=) of tunroute run's log.
func tookInLog(log string, n int) []time.Duration {
	var ds []time.Duration
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "msg=hook ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "took="); ok {
				if d, err := time.ParseDuration(v); err == nil {
					ds = append(ds, d)
				}
			}
		}
	}
	return ds[max(len(ds)-n, 0):]
}

func figures(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))].Round(100 * time.Microsecond) }
	return fmt.Sprintf("p50 %v, p90 %v, max %v", q(0.5), q(0.9), q(1))
}
