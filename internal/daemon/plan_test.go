package daemon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// TestPlanThroughDaemon: `tunroute plan` with tunroute run up is answered
// by the daemon: the same text and exit status as a plan by itself (in
// sync: exit 0; after a drift the daemon is kept from repairing: exit 2
// with the same lines); with another config the command plans by itself.
func TestPlanThroughDaemon(t *testing.T) {
	w := newWorld(t, "pl")
	w.daemonRun(Options{Log: testLog(t), Listen: true})
	abs, _ := filepath.Abs(w.cfgPath)
	a, err := AskPlan(w.runDir, w.top, abs, 10*time.Second)
	if err != nil || a.Pending || !strings.Contains(a.Plan, "No changes") {
		t.Fatalf("plan through the daemon: %+v %v", a, err)
	}
	other := filepath.Join(w.dir, "other.yaml")
	b, _ := os.ReadFile(w.cfgPath)
	os.WriteFile(other, b, 0o644)
	if _, err := AskPlan(w.runDir, w.top, other, 10*time.Second); !errors.Is(err, ErrOtherConfig) {
		t.Fatalf("a plan of another config: %v", err)
	}
	if _, err := AskPlan(filepath.Join(w.dir, "nowhere"), w.top, abs, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no daemon: %v", err)
	}
	bin, err := testns.Binary()
	if err != nil {
		t.Fatal(err)
	}
	plan := func(cfg string) (string, int) {
		cmd := exec.Command(bin, "plan", "--netns", w.top, "--run-dir", w.runDir, "-c", cfg)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	before, _ := Ask(w.runDir, w.top, "status")
	viaDaemon, code := plan(w.cfgPath)
	after, _ := Ask(w.runDir, w.top, "status")
	itself, code2 := plan(other)
	if after.Plans != before.Plans+1 {
		t.Errorf("tunroute plan was not answered by the daemon (plans %d -> %d)", before.Plans, after.Plans)
	}
	if again, _ := Ask(w.runDir, w.top, "status"); again.Plans != after.Plans {
		t.Errorf("tunroute plan of another config was answered by the daemon")
	}
	if code != 0 || code2 != 0 || viaDaemon != itself {
		t.Fatalf("plan through the daemon (exit %d):\n%s\nby itself (exit %d):\n%s", code, viaDaemon, code2, itself)
	}
	// tunroute status: the daemon reads, the command reports the same.
	status := func(cfg string) string {
		out, err := exec.Command(bin, "status", "--netns", w.top, "--run-dir", w.runDir, "-c", cfg).CombinedOutput()
		if err != nil {
			t.Fatalf("tunroute status: %v\n%s", err, out)
		}
		// the daemon's own figures move between the two runs
		head, _, _ := strings.Cut(string(out), "tunroute run:")
		return strings.ReplaceAll(head, other, w.cfgPath)
	}
	r0, _ := Ask(w.runDir, w.top, "status")
	viaDaemon, itself = status(w.cfgPath), status(other)
	if r1, _ := Ask(w.runDir, w.top, "status"); r1.StatusReads != r0.StatusReads+1 {
		t.Errorf("tunroute status was not read by the daemon (%d -> %d)", r0.StatusReads, r1.StatusReads)
	}
	if viaDaemon != itself {
		t.Errorf("status through the daemon:\n%s\nby itself:\n%s", viaDaemon, itself)
	}
	st, _ := Ask(w.runDir, w.top, "status")
	t.Logf("plan through the daemon:\n%s(route reads kept %d, read %d)", viaDaemon, st.RouteReadsCached, st.RouteReadsKernel)
}

// TestApplyThroughDaemon: plain `tunroute apply` with tunroute run up is
// made by the daemon (its status counts it): an edited config is applied,
// a broken one is refused with the place of the error and changes
// nothing, and with nothing to change it says so.
func TestApplyThroughDaemon(t *testing.T) {
	w := newWorld(t, "ap")
	w.daemonRun(Options{Log: testLog(t), Listen: true})
	bin, err := testns.Binary()
	if err != nil {
		t.Fatal(err)
	}
	apply := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"apply", "--netns", w.top, "--run-dir", w.runDir, "-c", w.cfgPath}, args...)...).CombinedOutput()
		return string(out), err
	}
	applies := func() uint64 {
		st, err := Ask(w.runDir, w.top, "status")
		if err != nil {
			t.Fatal(err)
		}
		return st.Applies
	}
	n0 := applies()
	if out, err := apply(); err != nil || !strings.Contains(out, "No changes") || applies() != n0+1 {
		t.Fatalf("apply with nothing to change: %v\n%s", err, out)
	}
	// The daemon follows the config file at its next check (one follows
	// every apply): let it settle, so that the edit below is the dry
	// run's to show, not the daemon's to apply first.
	quiet(t, w)
	good, _ := os.ReadFile(w.cfgPath)
	os.WriteFile(w.cfgPath, []byte(strings.Replace(string(good), "198.51.100.0/24,", "198.51.100.0/24, 203.0.113.0/24,", 1)), 0o644)
	if out, err := apply("--dry-run"); err != nil || !strings.Contains(out, "+ route 203.0.113.0/24") {
		t.Fatalf("apply --dry-run: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "-n", w.top, "route", "show", "203.0.113.0/24").CombinedOutput(); len(out) != 0 {
		t.Fatalf("--dry-run changed something: %s", out)
	}
	out, err := apply()
	if err != nil || !strings.Contains(out, "Applied:") || applies() != n0+2 {
		t.Fatalf("apply of an edited config: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "-n", w.top, "route", "show", "203.0.113.0/24").CombinedOutput(); !strings.Contains(string(out), "via 192.0.2.1") {
		t.Fatalf("the edited config's route is not there: %q", out)
	}
	edited, _ := os.ReadFile(w.cfgPath)
	os.WriteFile(w.cfgPath, append(edited, []byte("routes: [nonsense\n")...), 0o644)
	if out, err := apply(); err == nil || !strings.Contains(out, w.cfgPath+":") {
		t.Fatalf("apply of a broken config: %v\n%s", err, out)
	}
	if ok, plan := w.inSyncWith(edited); !ok {
		t.Fatalf("a refused apply changed something:\n%s", plan)
	}
	t.Logf("applies made by the daemon: %d", applies()-n0)
}

// quiet waits until the daemon has made no check for 300 ms.
func quiet(t *testing.T, w *world) {
	t.Helper()
	last, since := uint64(0), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := Ask(w.runDir, w.top, "status")
		if err != nil {
			t.Fatal(err)
		}
		if st.Checks != last {
			last, since = st.Checks, time.Now()
		} else if time.Since(since) > 300*time.Millisecond {
			return
		}
	}
	t.Fatal("the daemon kept checking for 10 s")
}
