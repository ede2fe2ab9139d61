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
	if a, err := AskPlan(w.runDir, w.top, abs, 10*time.Second); err != nil || a == nil {
		t.Fatalf("%+v %v", a, err)
	}
	st, _ := Ask(w.runDir, w.top, "status")
	t.Logf("plan through the daemon:\n%s(route reads kept %d, read %d)", viaDaemon, st.RouteReadsCached, st.RouteReadsKernel)
}
