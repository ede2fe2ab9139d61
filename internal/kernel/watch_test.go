package kernel

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestWatch: every kind of change made by ip(8) and nft(8) in a namespace
// reaches the watcher, with the fields the daemon filters on.
func TestWatch(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
	ns := fmt.Sprintf("tr-dn-w-%d", os.Getpid())
	exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	events := make(chan WatchEvent, 1024)
	w, err := Watch(ns, events)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	expect := func(what string, match func(WatchEvent) bool) {
		t.Helper()
		testns.Await(t, events, 2*time.Second, "event for "+what, func(ev WatchEvent) bool {
			if ev.Netns != ns {
				t.Fatalf("event of namespace %q, want %q", ev.Netns, ns)
			}
			return match(ev)
		})
	}
	ipn(t, ns, "link", "add", "trw0", "type", "veth", "peer", "name", "trw1")
	expect("link add", func(e WatchEvent) bool { return e.Kind == WatchLink && !e.Deleted })
	ipn(t, ns, "link", "set", "trw0", "up")
	ipn(t, ns, "addr", "add", "192.0.2.1/24", "dev", "trw0")
	expect("addr add", func(e WatchEvent) bool { return e.Kind == WatchAddr && e.Family == 2 })
	ipn(t, ns, "route", "add", "198.51.100.0/24", "via", "192.0.2.2", "table", "1234", "proto", "116")
	want := netip.MustParsePrefix("198.51.100.0/24")
	expect("route add", func(e WatchEvent) bool {
		return e.Kind == WatchRoute && !e.Deleted && e.Table == 1234 && e.Dst == want && e.Protocol == state.Proto
	})
	ipn(t, ns, "route", "del", "198.51.100.0/24", "table", "1234")
	expect("route del", func(e WatchEvent) bool { return e.Kind == WatchRoute && e.Deleted && e.Dst == want })
	ipn(t, ns, "-6", "route", "add", "2001:db8:1::/48", "dev", "trw0", "table", "300000", "proto", "static")
	want6 := netip.MustParsePrefix("2001:db8:1::/48")
	expect("v6 route add", func(e WatchEvent) bool {
		return e.Kind == WatchRoute && e.Table == 300000 && e.Dst == want6 && e.Protocol == 4
	})
	ipn(t, ns, "rule", "add", "pref", "100", "to", "203.0.113.0/24", "lookup", "1234", "proto", "116")
	expect("rule add", func(e WatchEvent) bool { return e.Kind == WatchRule && e.Protocol == state.Proto })
	ipn(t, ns, "-6", "rule", "del", "pref", "0")
	ipn(t, ns, "-6", "rule", "add", "pref", "100", "lookup", "1234")
	expect("v6 rule", func(e WatchEvent) bool { return e.Kind == WatchRule && e.Family == 10 })
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "add table inet tunroute").CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	expect("nft table", func(e WatchEvent) bool { return e.Kind == WatchFirewall && e.FirewallTable == "tunroute" && !e.Deleted })
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush ruleset").CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	expect("nft flush", func(e WatchEvent) bool { return e.Kind == WatchFirewall && e.FirewallTable == "tunroute" && e.Deleted })
	ipn(t, ns, "link", "del", "trw0")
	expect("link del", func(e WatchEvent) bool { return e.Kind == WatchLink && e.Deleted })
}

// TestWatchLost: when the socket's buffer overflows the watcher says so
// (WatchLost), so the daemon reads everything again.
func TestWatchLost(t *testing.T) {
	needRoot(t)
	ns := fmt.Sprintf("tr-dn-wl-%d", os.Getpid())
	exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipn(t, ns, "link", "add", "trw0", "type", "veth", "peer", "name", "trw1")
	ipn(t, ns, "link", "set", "trw0", "up")
	old := watchRecvBuffer
	watchRecvBuffer = 4096
	defer func() { watchRecvBuffer = old }()
	events := make(chan WatchEvent) // nobody reads yet: the socket fills
	w, err := Watch(ns, events)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var script strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&script, "route add 10.%d.%d.0/24 dev trw0\n", i/256, i%256)
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v %s", err, out)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == WatchLost {
				return
			}
		case <-deadline:
			t.Fatal("no lost-events report after overflowing the socket")
		}
	}
}
