package daemon

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// TestFight: another program deletes one of tunroute's rules every 10 ms
// for 10 s. The daemon backs off (few repairs, a warning naming the rule
// and the networkd fix), uses little CPU, and puts the rule back once the
// other program stops.
func TestFight(t *testing.T) {
	w := newWorld(t, "fi")
	p := w.startDaemon()
	deletes := 0
	fight, ended, cpu := fightFor10s(t, p, func() {
		if exec.Command("ip", "-n", w.top, "rule", "del", "pref", "5000", "from", "192.0.2.2").Run() == nil {
			deletes++
		}
	})
	st, err := Ask(w.runDir, w.top, "status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fight: %d deletions in %s, %d repairs of rules, daemon CPU %.1f%% of one core", deletes, fight.Round(time.Millisecond), st.Repairs["rule"], cpu)
	if st.Repairs["rule"] > 30 || st.Repairs["rule"] < 3 {
		t.Errorf("%d repairs during the fight: no back-off", st.Repairs["rule"])
	}
	if cpu > 25 {
		t.Errorf("the daemon used %.1f%% CPU during the fight", cpu)
	}
	log := p.log.String()
	if !strings.Contains(log, "keeps undoing") || !strings.Contains(log, "ManageForeignRoutingPolicyRules=no") || !strings.Contains(log, "rule pref 5000 from 192.0.2.2/32") {
		t.Errorf("no fight warning naming the rule and the fix:\n%s", log)
	}
	// The back-off ends: the rule comes back.
	deadline := time.Now().Add(maxBackoff + 5*time.Second)
	for {
		if ok, _ := w.inSync(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired after the fight:\n%s", p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("restored %s after the fight", time.Since(ended).Round(time.Millisecond))
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "WARN") {
			t.Log(l)
		}
	}
}

// fightFor10s is the other program: undo runs every 10 ms for 10 s
// against the daemon p. It returns how long the fight took, when it
// ended and the daemon's CPU meanwhile (percent of one core).
func fightFor10s(t *testing.T, p *proc, undo func()) (fight time.Duration, ended time.Time, cpu float64) {
	t.Helper()
	pid := p.cmd.Process.Pid
	before := testns.ProcessCPU(t, pid)
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		undo()
		time.Sleep(10 * time.Millisecond)
	}
	fight = time.Since(start)
	return fight, start.Add(fight), 100 * (testns.ProcessCPU(t, pid) - before).Seconds() / fight.Seconds()
}
