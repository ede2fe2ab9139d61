package daemon

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/kernel"
	"golang.org/x/sys/unix"
)

// daemonHoldsTable reports whether the daemon working on ns says it holds
// the kill switch's table, and checks that with the kernel: a hold of the
// test's own is then refused (EPERM, another socket owns the table).
func daemonHoldsTable(t *testing.T, runDir, ns string) bool {
	t.Helper()
	st, err := Ask(runDir, ns, "status")
	if err != nil {
		t.Fatal(err)
	}
	if !st.KillSwitchHeld {
		return false
	}
	f, err := kernel.HoldFirewall(ns)
	if err == nil {
		f.Release()
		t.Fatal("the daemon says it holds the kill switch's table, but the test could claim it")
	}
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("claiming the table the daemon holds: %v, want EPERM", err)
	}
	return true
}

// waitHeld waits until the daemon holds the table in ns.
func waitHeld(t *testing.T, runDir, ns string, log func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !daemonHoldsTable(t, runDir, ns) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon does not hold the kill switch's table after 10 s:\n%s", log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasTable(ns string) bool {
	out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").Output()
	return strings.Contains(string(out), "table inet tunroute")
}

// TestHoldAgainstOtherProcesses: `tunroute run` holds the kill switch's
// table: another process's nft flush ruleset skips it, its nft delete
// table is refused; `tunroute down` (another process) asks the daemon to
// let go and succeeds; the daemon puts everything back and holds the
// table again; a "release" request alone is followed by a hold too.
func TestHoldAgainstOtherProcesses(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
	w := newWorld(t, "tr-ok-hold")
	p := w.startDaemon()
	deadline := time.Now().Add(10 * time.Second)
	for !hasTable(w.top) {
		if time.Now().After(deadline) {
			t.Fatalf("no kill switch 10 s after the start:\n%s", p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); !daemonHoldsTable(t, w.runDir, w.top); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(p.log.String(), "table is not held") {
			t.Skip("this kernel has no owned persistent tables (Linux < 6.9)")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon does not hold the kill switch's table 10 s after the start:\n%s", p.log.String())
		}
	}
	for i := 0; i < 5; i++ {
		w.sh("ip netns exec " + w.top + " nft flush ruleset")
	}
	if !hasTable(w.top) {
		t.Fatalf("nft flush ruleset deleted the held table:\n%s", p.log.String())
	}
	if out, err := exec.Command("ip", "netns", "exec", w.top, "nft", "delete", "table", "inet", "tunroute").CombinedOutput(); err == nil {
		t.Errorf("another process deleted the held table: %s", out)
	}
	// A command of another process: down removes the table (the
	// daemon lets it go first), the daemon repairs and holds again.
	down := exec.Command(binary(t), "--run-dir", w.runDir, "down", "--netns", w.top, "-c", w.cfgPath)
	if out, err := down.CombinedOutput(); err != nil {
		t.Fatalf("tunroute down while the daemon holds the table: %v\n%s\ndaemon:\n%s", err, out, p.log.String())
	} else if !strings.Contains(string(out), "Removed") {
		t.Errorf("tunroute down: %s", out)
	}
	waitHeld(t, w.runDir, w.top, p.log.String)
	if !hasTable(w.top) {
		t.Fatal("the daemon holds no table")
	}
	w.sh("ip netns exec " + w.top + " nft flush ruleset")
	if !hasTable(w.top) {
		t.Fatalf("nft flush ruleset deleted the table held again:\n%s", p.log.String())
	}
	// "release" alone: the daemon lets go, checks, and holds again.
	if err := ReleaseFirewall(w.runDir, w.top); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, w.runDir, w.top, p.log.String)
	// No daemon: nothing to ask, no error.
	if err := ReleaseFirewall(t.TempDir(), w.top); err != nil {
		t.Errorf("no daemon: %v", err)
	}
	if _, err := os.Stat(SocketPath(w.runDir, w.top)); err != nil {
		t.Error(err)
	}
}

// unheld runs cmd, which deletes the kill switch's table, with the
// daemon's hold let go (as on a kernel without owned tables), and returns
// the repair that follows; it tries again if a check held the table
// again before cmd ran (no repair follows then).
func unheld(t testing.TB, d *Daemon, reps <-chan Repair, cmd string) Repair {
	t.Helper()
	for i := 0; i < 20; i++ {
		d.releaseFirewall()
		exec.Command("sh", "-c", cmd).Run()
		deadline := time.After(2 * time.Second)
	wait:
		for {
			select {
			case r := <-reps:
				if r.Err != nil {
					t.Fatalf("repair failed: %v", r.Err)
				}
				if slices.Contains(r.Kinds(), "firewall") {
					return r
				}
			case <-deadline:
				break wait
			}
		}
	}
	t.Fatalf("%s: no repair of the table after 20 tries", cmd)
	return Repair{}
}
