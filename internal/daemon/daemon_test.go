package daemon

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// drift is one way the kernel is changed under tunroute: a command another
// program (an admin, networkd, a firewall script) runs, and the kind of
// object the repair must put back.
type drift struct {
	name, cmd, kind string
}

func drifts(w *world) []drift {
	top := "ip -n " + w.top + " "
	nft := "ip netns exec " + w.top + " nft "
	return []drift{
		{"route v4 deleted", top + "route del 198.51.100.0/24", "route"},
		{"route v6 deleted", top + "-6 route del 2001:db8:77::/48", "route"},
		{"route v4 in tunroute's table deleted", top + "route del default table 10", "route"},
		{"route v6 in tunroute's table deleted", top + "-6 route del default table 10", "route"},
		{"rule v4 deleted", top + "rule del pref 5000 from 192.0.2.2", "rule"},
		{"rule v6 deleted", top + "-6 rule del pref 5000", "rule"},
		{"address deleted", top + "addr del 10.250.2.1/30 dev trdn0", "address"},
		{"owned link down", top + "link set trdn0 down", "link"},
		{"nft delete table inet tunroute", nft + "delete table inet tunroute", "firewall"},
		{"nft flush ruleset", nft + "flush ruleset", "firewall"},
		{"route in a domain deleted", "ip -n " + w.d1 + " route del default", "route"},
		// Another program's objects claiming tunroute's protocol where the
		// config wants none: tunroute owns them by that mark, and removes them.
		{"route claiming tunroute's protocol added", top + "route add 203.0.113.0/24 via 192.0.2.1 dev up0 proto 116", "route"},
		{"rule claiming tunroute's protocol added", top + "rule add pref 7777 to 203.0.113.0/24 lookup 99 proto 116", "rule"},
	}
}

// waitRepair waits for the repair of an object of kind.
func waitRepair(tb testing.TB, reps <-chan Repair, kind string) Repair {
	tb.Helper()
	return testns.Await(tb, reps, 5*time.Second, "repair of a "+kind, func(r Repair) bool {
		if r.Err != nil {
			tb.Fatalf("repair failed: %v", r.Err)
		}
		return slices.Contains(r.Kinds(), kind)
	})
}

func drain(reps <-chan Repair) {
	for {
		select {
		case <-reps:
		default:
			return
		}
	}
}

// TestDriftRepaired: every drift of the table is put back, and a fresh
// plan is empty afterwards; the repair latency (from reading the event
// to the kernel's acknowledgement) is printed.
func TestDriftRepaired(t *testing.T) {
	w := newWorld(t, "dr")
	d, reps := w.daemonRun(Options{Log: testLog(t)})
	if ok, plan := w.inSync(); !ok {
		t.Fatalf("not in sync after the first apply:\n%s", plan)
	}
	var table strings.Builder
	for _, dr := range drifts(w) {
		drain(reps)
		var r Repair
		if dr.kind == "firewall" && d.Status().KillSwitchHeld {
			// Linux >= 6.9: the held table is out of the command's reach
			// (hold.go); let it go to see the repair older kernels get.
			exec.Command("sh", "-c", dr.cmd).Run()
			if !hasTable(w.top) {
				t.Fatalf("%s: deleted the held table", dr.name)
			}
			r = unheld(t, d, reps, dr.cmd)
		} else {
			w.sh(dr.cmd)
			r = waitRepair(t, reps, dr.kind)
		}
		// The repair is applied; let the echo of its own events settle.
		deadline := time.Now().Add(3 * time.Second)
		for {
			ok, plan := w.inSync()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not in sync after the repair:\n%s", dr.name, plan)
			}
			time.Sleep(20 * time.Millisecond)
		}
		fmt.Fprintf(&table, "  %-50s %-9s %8.2f ms  %s\n", dr.name, dr.kind, float64(r.Latency.Microseconds())/1000, strings.Join(keys(r.Objects), "; "))
	}
	// A foreign route that takes the key of one of tunroute's: tunroute
	// never overwrites another program's object; the daemon says so
	// (status, log) and puts its route back when the other one goes.
	for _, fr := range []struct{ add, del string }{
		{"route replace 198.51.100.0/24 via 192.0.2.1 dev up0 proto static", "route del 198.51.100.0/24 proto static"},
		{"-6 route replace 2001:db8:77::/48 via 2001:db8:1::1 dev up0 proto dhcp", "-6 route del 2001:db8:77::/48 proto dhcp"},
	} {
		w.sh("ip -n " + w.top + " " + fr.add)
		deadline := time.Now().Add(3 * time.Second)
		for st := d.Status(); st.InSync || !strings.Contains(st.LastError, "not tunroute's"); st = d.Status() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the daemon does not report the conflict: %+v", fr.add, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
		drain(reps)
		w.sh("ip -n " + w.top + " " + fr.del)
		r := waitRepair(t, reps, "route")
		fmt.Fprintf(&table, "  %-50s %-9s %8.2f ms  %s\n", "foreign route with the same key, then removed", "route", float64(r.Latency.Microseconds())/1000, strings.Join(keys(r.Objects), "; "))
	}
	// A routing domain's namespace deleted: the daemon keeps the list of
	// domains between repairs, so this checks that a gone one is noticed
	// (its pipe end in the top namespace goes with it) and made again.
	drain(reps)
	w.sh("ip netns del " + w.d1)
	// The kernel takes the namespace apart after the command returns (the
	// pipe's other end goes later): a repair planned in between fails, and
	// the next one, after the pipe end is gone, succeeds.
	var r Repair
	for deadline := time.After(5 * time.Second); r.Latency == 0; {
		select {
		case got := <-reps:
			if got.Err == nil && slices.Contains(got.Kinds(), "namespace") {
				r = got
			} else if got.Err != nil {
				t.Logf("a repair while the namespace was being taken apart: %v", got.Err)
			}
		case <-deadline:
			t.Fatal("the deleted routing domain was not made again within 5 s")
		}
	}
	fmt.Fprintf(&table, "  %-50s %-9s %8.2f ms  %s\n", "routing domain's namespace deleted", "namespace", float64(r.Latency.Microseconds())/1000, strings.Join(keys(r.Objects), "; "))
	deadline := time.Now().Add(3 * time.Second)
	for ok, plan := w.inSync(); !ok; ok, plan = w.inSync() {
		if time.Now().After(deadline) {
			t.Fatalf("not in sync after the domain was made again:\n%s", plan)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("repair latency (event read -> kernel ack):\n%s", table.String())
	st := d.Status()
	if !st.InSync || st.Repairs["rule"] < 2 || st.Repairs["firewall"] < 2 || len(st.Watching) != 2 {
		t.Errorf("status: %+v", st)
	}
	t.Logf("status:\n%s", st.Text())
}
