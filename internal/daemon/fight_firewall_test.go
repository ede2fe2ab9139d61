package daemon

import (
	"testing"
	"time"
)

// TestFirewallFightNotBackedOff: the kill switch's table, undone again
// and again, is repaired at once the first times, then every 100 ms at
// the most, never longer (packets in clear pass while it is gone), and
// warned about at the 3rd, 6th, 12th repair.
func TestFirewallFightNotBackedOff(t *testing.T) {
	f := newFights(0)
	fw := object{Key: "ns: firewall table inet tunroute", Kind: kindFirewall}
	now := time.Unix(1000, 0)
	var warned []int
	for i := 0; i < 20; i++ {
		held, until := f.hold([]object{fw}, now)
		switch {
		case i < 3 && held:
			t.Fatalf("repair %d of the firewall held back", i+1)
		case i >= 3 && (!held || until.Sub(now) > minBackoff):
			t.Fatalf("repair %d: held %v until %v: want at most %v", i+1, held, until.Sub(now), minBackoff)
		}
		if held {
			now = until
		}
		for _, n := range f.repaired([]object{fw}, now) {
			if n.Backoff != minBackoff || n.Object != fw.Key {
				t.Errorf("news: %+v", n)
			}
			warned = append(warned, n.Repairs)
		}
		now = now.Add(10 * time.Millisecond)
	}
	if len(warned) != 3 || warned[0] != 3 || warned[1] != 6 || warned[2] != 12 {
		t.Errorf("warned at repairs %v, want [3 6 12]", warned)
	}
	if a := f.active(now.Add(minBackoff)); len(a) != 0 {
		t.Errorf("in back-off after %v: %v", minBackoff, a)
	}
}
