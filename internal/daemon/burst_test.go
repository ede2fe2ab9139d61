package daemon

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBurst: 50,000 foreign routes land in the main table (a BGP feed, a
// VPN pushing a country list) while owned objects are deleted: the
// daemon converges, and the foreign routes do not make it read the
// system for each.
func TestBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 routes")
	}
	w := newWorld(t, "bu")
	d, _ := w.daemonRun(Options{Log: testLog(t)})
	before := d.Status()
	var script strings.Builder
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&script, "route add 10.%d.%d.0/24 via 192.0.2.1 proto static\n", i/256, i%256)
		if i == 25000 {
			script.WriteString("rule del pref 5000 from 192.0.2.2\nroute del 198.51.100.0/24\n")
		}
	}
	start := time.Now()
	cmd := exec.Command("ip", "-n", w.top, "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v %s", err, out)
	}
	w.sh("ip -n " + w.top + " -6 rule del pref 5000")
	added := time.Since(start)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ok, _ := w.inSync(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not in sync 60 s after the burst: %+v", d.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	conv := time.Since(start)
	// Let the queue of events drain, then count.
	time.Sleep(2 * time.Second)
	st := d.Status()
	t.Logf("burst: 50,000 routes added in %s, in sync %s after the start; events %d (%d that can matter), resyncs %d, reads of the system %d, repairs %v",
		added.Round(time.Millisecond), conv.Round(time.Millisecond), st.Events-before.Events, st.Relevant-before.Relevant, st.Resyncs-before.Resyncs, st.Checks-before.Checks, st.Repairs)
	if st.Events-before.Events < 50000 && st.Resyncs == before.Resyncs {
		t.Errorf("events lost without a resync: %d events", st.Events-before.Events)
	}
	if st.Checks-before.Checks > 100 {
		t.Errorf("%d reads of the system for a burst of foreign routes", st.Checks-before.Checks)
	}
	if !st.InSync {
		t.Errorf("status not in sync: %+v", st)
	}
}
