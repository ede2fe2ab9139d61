package testns

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// TestKillIn: a process running inside a test namespace is found and
// killed by pid; the namespace is then deleted and gone.
func TestKillIn(t *testing.T) {
	Need(t, "ip")
	ns := NewNS(t, fmt.Sprintf("tr-dt-kill-%d", os.Getpid()))
	cmd := exec.Command("ip", "netns", "exec", ns, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var killed []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// ip execs sleep once it has entered the namespace.
		if killed = KillIn(ns); len(killed) > 0 {
			break
		}
	}
	if !slices.Contains(killed, cmd.Process.Pid) {
		t.Fatalf("KillIn(%s) = %v, want the pid %d", ns, killed, cmd.Process.Pid)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the process still runs")
	}
	if err := Delete(ns); err != nil {
		t.Fatal(err)
	}
	if left := Own(ns); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}
