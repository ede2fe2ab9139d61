package kernel

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// scopeNS creates the namespace tr-co-<short>-<pid>, deleted when the test
// ends.
func scopeNS(t *testing.T, short string) string {
	t.Helper()
	name := fmt.Sprintf("tr-co-%s-%d", short, os.Getpid())
	exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// ipBatch runs lines through `ip -n ns -batch`.
func ipBatch(t *testing.T, ns string, lines []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns, "-batch", f).CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
}

// routeStrings renders routes for comparison, sorted: the scoped read
// orders tunroute's routes first.
func routeStrings(rs []state.Route) []string {
	var out []string
	for _, r := range rs {
		b, _ := json.Marshal(r)
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

// TestObserveScope: a scoped read holds exactly what the in-memory filter
// keeps of a full read, on a namespace whose main table is bigger than the
// scope's whole size, with tunroute's routes in several tables, a foreign
// route under the key of a point (a conflict the plan must see), and a
// foreign table outside the scope.
func TestObserveScope(t *testing.T) {
	needRoot(t)
	ns := scopeNS(t, "scope")
	quietIPv6(t, ns)
	var lines []string
	lines = append(lines, "link set lo up", "link add va type veth peer name vb", "link set va up", "link set vb up",
		"addr add 192.0.2.10/24 dev va", "addr add 2001:db8:5::1/64 dev va nodad",
		"route add default via 192.0.2.1 dev va proto static",
		"route add default via 2001:db8:5::fe dev va proto static")
	for i := 0; i < 3000; i++ {
		lines = append(lines, fmt.Sprintf("route add 10.%d.%d.0/24 via 192.0.2.1 dev va proto bgp", 100+i/250, i%250))
	}
	for i := 0; i < 1200; i++ {
		lines = append(lines, fmt.Sprintf("route add 2001:db8:%x::/48 via 2001:db8:5::fe dev va proto bgp", 0x1000+i))
	}
	lines = append(lines,
		"route add 10.100.3.0/24 via 192.0.2.1 dev va proto bgp metric 7", // same prefix, other metric
		"route add 10.100.0.0/16 via 192.0.2.1 dev va proto bgp",          // an ancestor of a point
		"route add 10.200.0.0/16 via 192.0.2.1 dev va proto boot",         // foreign, covering no point
		"route add 0.0.0.0/1 via 192.0.2.1 dev va proto boot",             // the key of one of tunroute's routes: a conflict
		"route add 10.1.0.0/24 via 192.0.2.1 dev va table 100 proto static",
		"route add 10.2.0.0/24 via 192.0.2.1 dev va table 200 proto static",
		"route add 10.3.0.0/24 via 192.0.2.1 dev va table 300 proto 116",
		"route add 128.0.0.0/1 via 192.0.2.1 dev va proto 116",
		"route add 198.51.100.2/32 via 192.0.2.1 dev va proto 116",
		"route add 2001:db8:1000::/48 via 2001:db8:5::fe dev va table 300 proto 116",
	)
	ipBatch(t, ns, lines)
	settle(t, ns)
	h := openT(t, ns)
	scope := &RouteScope{Tables: []uint32{state.TableMain, state.TableLocal, 100}, Whole: 1000, Points: []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"),
		netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"),
		netip.MustParsePrefix("198.51.100.2/32"), netip.MustParsePrefix("10.100.3.0/24"),
		netip.MustParsePrefix("2001:db8:1001::/48"),
	}}
	full, err := h.Observe()
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.ObserveWith(ObserveOptions{Routes: scope})
	if err != nil {
		t.Fatal(err)
	}
	want := scope.Filter(full.Routes)
	if g, w := routeStrings(got.Routes), routeStrings(want); !slices.Equal(g, w) {
		t.Errorf("scoped read: %d routes, the filter of the full read %d:\n%s\nwant\n%s", len(g), len(w), strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	if len(full.Routes) < 4200 || len(got.Routes) > 60 {
		t.Errorf("full read %d routes, scoped %d: the scope did not cut the big table", len(full.Routes), len(got.Routes))
	}
	has := func(dst string, proto state.Protocol, metric uint32) bool {
		return slices.ContainsFunc(got.Routes, func(r state.Route) bool {
			return r.Dst.String() == dst && r.Protocol == proto && r.Metric == metric
		})
	}
	for _, c := range []struct {
		dst    string
		proto  state.Protocol
		metric uint32
		want   bool
	}{
		{"0.0.0.0/1", 3, 0, true},             // the conflict
		{"10.100.3.0/24", 186, 0, true},       // a point's own routes, both metrics
		{"10.100.3.0/24", 186, 7, true},       //
		{"10.100.0.0/16", 186, 0, true},       // its ancestor
		{"10.200.0.0/16", 3, 0, false},        // covers no point
		{"10.100.4.0/24", 186, 0, false},      // a sibling
		{"10.1.0.0/24", 4, 0, true},           // a small table in scope: whole
		{"10.2.0.0/24", 4, 0, false},          // a table outside the scope
		{"10.3.0.0/24", state.Proto, 0, true}, // tunroute's, anywhere
		{"2001:db8:1000::/48", state.Proto, 1024, true},
		{"2001:db8:1001::/48", 186, 1024, true},
		{"2001:db8:1002::/48", 186, 1024, false},
		{"192.0.2.0/24", protoKernel, 0, true}, // connected
	} {
		if has(c.dst, c.proto, c.metric) != c.want {
			t.Errorf("route %s proto %d metric %d kept: %v, want %v", c.dst, c.proto, c.metric, !c.want, c.want)
		}
	}
	// With the tables the rules reach and the prefixes of the addresses:
	// table 200 comes in through its rule, 192.0.2.0/24 as a point.
	ipn(t, ns, "rule", "add", "from", "10.9.0.0/16", "lookup", "200", "pref", "100")
	full, err = h.Observe()
	if err != nil {
		t.Fatal(err)
	}
	lookup := &RouteScope{RuleTables: true, AddrPrefixes: true, Whole: 1000, Points: []netip.Prefix{netip.MustParsePrefix("10.100.3.9/32")}}
	got2, err := h.ObserveWith(ObserveOptions{Routes: lookup})
	if err != nil {
		t.Fatal(err)
	}
	want2 := *full
	lookup.FilterState(&want2)
	if g, w := routeStrings(got2.Routes), routeStrings(want2.Routes); !slices.Equal(g, w) || !slices.ContainsFunc(got2.Routes, func(r state.Route) bool { return r.Table == 200 }) {
		t.Errorf("scoped read by rules: %d routes, the filter of the full read %d:\n%s\nwant\n%s", len(g), len(w), strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	// The compact read keeps the same routes of others, and every one of
	// tunroute's.
	compact, err := h.ObserveWith(ObserveOptions{Routes: scope, CompactRoutes: true, CompactMin: 1})
	if err != nil {
		t.Fatal(err)
	}
	var own int
	for _, set := range compact.RouteSets {
		own += len(set.Dsts)
	}
	var foreign []state.Route
	for _, r := range compact.Routes {
		if r.Owned() {
			own++
		} else {
			foreign = append(foreign, r)
		}
	}
	var wantForeign []state.Route
	for _, r := range want {
		if !r.Owned() {
			wantForeign = append(wantForeign, r)
		}
	}
	if own != 4 || !slices.Equal(routeStrings(foreign), routeStrings(wantForeign)) {
		t.Errorf("compact scoped read: %d of tunroute's routes (want 4), foreign %d (want %d)", own, len(foreign), len(wantForeign))
	}
}
