package daemon

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillAndRestart: SIGKILL of the daemon changes nothing in the
// kernel; a daemon started again on the unchanged system writes nothing
// (ip monitor and nft monitor, run as independent oracles, see no event)
// and takes over the socket the killed one left.
func TestKillAndRestart(t *testing.T) {
	w := newWorld(t, "kr")
	p := w.startDaemon()
	before := w.settled()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	time.Sleep(200 * time.Millisecond)
	if after := w.kernelState(); after != before {
		t.Fatalf("SIGKILL changed the kernel:\n--- before ---\n%s\n--- after ---\n%s", before, after)
	}

	var mons []*exec.Cmd
	var outs []*bytes.Buffer
	for _, ns := range []string{w.top, w.d1} {
		for _, argv := range [][]string{{"ip", "-n", ns, "monitor", "all"}, {"ip", "netns", "exec", ns, "nft", "monitor"}} {
			var out bytes.Buffer
			c := exec.Command(argv[0], argv[1:]...)
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			mons = append(mons, c)
			outs = append(outs, &out)
		}
	}
	t.Cleanup(func() {
		for _, c := range mons {
			if c.ProcessState == nil {
				c.Process.Kill()
				c.Wait()
			}
		}
	})
	time.Sleep(300 * time.Millisecond)
	p2 := w.startDaemon()
	time.Sleep(500 * time.Millisecond)
	for _, c := range mons {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}
	for i, out := range outs {
		s := strings.TrimSpace(out.String())
		// ip monitor prints nothing while idle; a namespace id line is
		// not a change.
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			// The new daemon claiming the kill switch's table (its
			// owner flag, hold.go) is no change of the rules.
			claim := strings.HasPrefix(l, "add table inet tunroute") || strings.HasPrefix(l, "# new generation")
			if l != "" && !strings.HasPrefix(l, "[NSID]") && !strings.Contains(l, "nsid") && !claim {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			t.Errorf("the restarted daemon changed the kernel (%v):\n%s", mons[i].Args, strings.Join(lines, "\n"))
		}
	}
	if log := p2.log.String(); strings.Contains(log, "applying") || strings.Contains(log, "repaired") {
		t.Errorf("the restarted daemon applied something:\n%s", log)
	}
	st, err := Ask(w.runDir, w.top, "status")
	if err != nil || !st.InSync || len(st.Repairs) != 0 {
		t.Errorf("status after restart: %+v, %v", st, err)
	}
	if after := w.kernelState(); after != before {
		t.Fatalf("the restart changed the kernel:\n--- before ---\n%s\n--- after ---\n%s", before, after)
	}
}
