package domaintest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/daemon"
)

// TestHookInsideDomainThroughDaemon: TestHookInsideDomain with `tunroute
// run` working on the top namespace: the hook, run inside the domain,
// finds the top's daemon and hands it the call; both calls go through it.
func TestHookInsideDomainThroughDaemon(t *testing.T) {
	e := newEnvAt(t, "tr-hs", "hk")
	var top string
	hookInsideDomain(t, e, func(ns, cfg string) {
		top = ns
		cmd := exec.Command(e.Bin, "--run-dir", e.RunDir, "run", "-c", cfg, "--netns", top)
		var log strings.Builder
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		e.procs = append(e.procs, cmd)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("tunroute run's log:\n%s", log.String())
			}
		})
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := daemon.Ask(e.RunDir, top, "status"); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("tunroute run does not answer: %v", err)
			}
		}
	})
	st, err := daemon.Ask(e.RunDir, top, "status")
	if err != nil {
		t.Fatal(err)
	}
	if st.Hooks != 2 || !strings.Contains(st.LastHook, "is down") || !st.InSync {
		t.Errorf("tunroute run, after the route-up and down hooks:\n%s", st.Text())
	}
	// A hook given another config than the daemon's is refused, naming
	// both, and neither applies.
	cfg := e.config("hook-inside.yaml", nil)
	other := filepath.Join(e.Dir, "other.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(other, b, 0o644)
	argv := []string{e.Bin, "exec", e.NS("inner"), "--", e.Bin, "--run-dir", e.RunDir, "hook", "openvpn", "-c", other}
	out, code, err := e.run(argv, openvpnEnv("route-up", "dttun0"))
	if err != nil || code == 0 || !strings.Contains(out, "works with the config "+cfg+", but the hook was given "+other) {
		t.Errorf("a hook with another config: exit %d, %v\n%s", code, err, out)
	}
	if got := e.ip(e.NS("inner"), "route", "show", "10.99.0.0/16"); got != "" {
		t.Errorf("the refused hook changed the domain's routes: %q", got)
	}
	if st, err := daemon.Ask(e.RunDir, top, "status"); err != nil || st.Hooks != 2 {
		t.Errorf("after the refused hook: %v %+v", err, st)
	}
}
