package daemon

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFollowsTheWorld: the uplink gateway moves (a roam, a DHCP renewal
// with another router): the identity's table follows it; an address
// appears on the uplink: its source rule follows; a `tunroute apply` of
// an edited config while the daemon runs is not undone.
func TestFollowsTheWorld(t *testing.T) {
	w := newWorld(t, "fw")
	w.daemonRun(Options{Log: testLog(t)})
	waitFor := func(what string, argv []string, want string, absent bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			if strings.Contains(string(out), want) != absent {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v prints %q", what, argv, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	w.sh("ip -n " + w.top + " route replace default via 192.0.2.3 dev up0")
	waitFor("gateway moved", []string{"ip", "-n", w.top, "route", "show", "table", "10", "default"}, "via 192.0.2.3", false)
	waitFor("gateway moved", []string{"ip", "-n", w.top, "route", "show", "198.51.100.0/24"}, "via 192.0.2.3", false)

	w.sh("ip -n " + w.top + " addr add 192.0.2.77/32 dev up0")
	waitFor("address added", []string{"ip", "-n", w.top, "rule"}, "from 192.0.2.77", false)
	w.sh("ip -n " + w.top + " addr del 192.0.2.77/32 dev up0")
	waitFor("address removed", []string{"ip", "-n", w.top, "rule"}, "from 192.0.2.77", true)

	// An edit applied by `tunroute apply` (the engine, as the command runs it).
	good, _ := os.ReadFile(w.cfgPath)
	os.WriteFile(w.cfgPath, []byte(strings.Replace(string(good), "198.51.100.0/24,", "198.51.100.0/24, 203.0.113.0/24,", 1)), 0o644)
	e := w.engine()
	unlock, err := e.Lock()
	if err != nil {
		t.Fatal(err)
	}
	s, c, err := e.PlanConfig(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(c); err != nil {
		t.Fatal(err)
	}
	s.Close()
	unlock()
	time.Sleep(300 * time.Millisecond)
	w.sh("ip -n " + w.top + " rule del pref 5000 from 192.0.2.2") // make the daemon plan
	time.Sleep(300 * time.Millisecond)
	waitFor("apply kept", []string{"ip", "-n", w.top, "route", "show", "203.0.113.0/24"}, "via 192.0.2.3", false)
	if ok, plan := w.inSync(); !ok {
		t.Fatalf("not in sync:\n%s", plan)
	}
}
