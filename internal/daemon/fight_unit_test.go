package daemon

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

func TestFightBackoff(t *testing.T) {
	f := newFights(0)
	rule := object{Key: "ns: rule pref 5000", Kind: "rule"}
	other := object{Key: "ns: route 10.0.0.0/8", Kind: "route", Competitor: "static"}
	now := time.Unix(1000, 0)
	var backoffs []time.Duration
	for i := 0; i < 12; i++ {
		if held, _ := f.hold([]object{rule}, now); held {
			t.Fatalf("repair %d: held, but the back-off has passed", i)
		}
		for _, n := range f.repaired([]object{rule}, now) {
			backoffs = append(backoffs, n.Backoff)
			if n.Object != rule.Key || n.Kind != "rule" {
				t.Errorf("news: %+v", n)
			}
		}
		fi := f.m[rule.Key]
		if i >= 2 {
			if held, until := f.hold([]object{rule}, now); !held || !until.Equal(now.Add(fi.backoff)) {
				t.Fatalf("repair %d: not held until %v", i, now.Add(fi.backoff))
			}
			// Another object's drift is repaired at once, with the held one.
			if held, _ := f.hold([]object{rule, other}, now); held {
				t.Fatal("a plan with an object not in back-off is held")
			}
		}
		now = now.Add(fi.backoff + time.Millisecond)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond, 25600 * time.Millisecond, 30 * time.Second}
	if len(backoffs) != len(want) {
		t.Fatalf("back-offs warned about: %v, want %v", backoffs, want)
	}
	for i := range want {
		if backoffs[i] != want[i] {
			t.Fatalf("back-offs: %v, want %v", backoffs, want)
		}
	}
	// Quiet for long: forgotten, the next repair is immediate again.
	now = now.Add(time.Minute)
	f.forget(now)
	if len(f.m) != 0 {
		t.Fatalf("fights not forgotten: %v", f.m)
	}
	// The competitor's protocol is kept for the warning.
	for i := 0; i < 3; i++ {
		news := f.repaired([]object{other}, now)
		if i == 2 && (len(news) != 1 || news[0].Competitor != "static") {
			t.Fatalf("news: %+v", news)
		}
		now = now.Add(time.Second)
	}
}

func TestInterest(t *testing.T) {
	in := &interest{}
	ev := kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRoute, Table: tableMain, Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocol: 4}
	if !in.wants(ev) {
		t.Fatal("before the first plan every route event matters")
	}
	in.known = true
	in.tables = map[string]map[uint32]bool{"top": {10: true}}
	in.keys = map[string]map[routeKey]bool{"top": {{tableMain, netip.MustParsePrefix("198.51.100.0/24")}: true}}
	in.rules = map[string]map[ruleKey]bool{"top": {{unix.AF_INET, 5000}: true}}
	for _, c := range []struct {
		ev   kernel.WatchEvent
		want bool
	}{
		{ev, false}, // a foreign route elsewhere in main
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRoute, Table: tableMain, Dst: netip.MustParsePrefix("198.51.100.0/24"), Protocol: 4}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRoute, Table: 10, Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocol: 4}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRoute, Table: tableMain, Dst: netip.MustParsePrefix("0.0.0.0/0"), Protocol: 16}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRoute, Table: tableMain, Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocol: state.Proto, Deleted: true}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRoute, Table: 10, Dst: netip.MustParsePrefix("0.0.0.0/0"), Protocol: state.Proto}, false},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRule, Protocol: state.Proto, Family: unix.AF_INET, Priority: 5000}, false},
		// tunroute's protocol where the config wants nothing: another program's
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRule, Protocol: state.Proto, Family: unix.AF_INET6, Priority: 5000}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRoute, Table: tableMain, Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocol: state.Proto}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRule, Protocol: state.Proto, Deleted: true}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchRule, Protocol: 4}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchFirewall, FirewallTable: "filter"}, false},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchFirewall, FirewallTable: "tunroute"}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchLink}, true},
		{kernel.WatchEvent{Netns: "top", Kind: kernel.WatchAddr}, true},
	} {
		if got := in.wants(c.ev); got != c.want {
			t.Errorf("wants(%+v) = %v", c.ev, got)
		}
	}
}
