// Package bench holds tunroute's large-table benchmark (routes.sh, with
// routegen) and, here, its small version as a correctness test that CI
// runs: route lists from files applied to a namespace must leave exactly
// the requested routes, change by exactly the edit, come out on down,
// and leave the table as it was when an apply fails half way.
package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/testns"
)

const table = 1000

// lists generates distinct prefixes, deterministically: IPv4 inside
// 10.0.0.0/8 with a mix of lengths like the Internet's (mostly /24),
// IPv6 inside 2001:db8::/32.
type lists struct {
	r    *rand.Rand
	seen map[netip.Prefix]bool
}

func newLists(seed uint64) *lists {
	return &lists{r: rand.New(rand.NewPCG(seed, 6)), seen: map[netip.Prefix]bool{}}
}

var mix4 = []int{16, 18, 19, 20, 20, 21, 21, 22, 22, 22, 23, 23, 23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 25, 26, 28, 30, 32}

func (l *lists) next(v6 bool) netip.Prefix {
	for {
		var p netip.Prefix
		if v6 {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			v := l.r.Uint64()
			for i := 0; i < 8; i++ {
				a[4+i] = byte(v >> (8 * i))
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), []int{40, 44, 48, 48, 48, 56, 64}[l.r.IntN(7)]).Masked()
		} else {
			v := l.r.Uint32()
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}), mix4[l.r.IntN(len(mix4))]).Masked()
		}
		if !l.seen[p] {
			l.seen[p] = true
			return p
		}
	}
}

func (l *lists) make(v6 bool, n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = l.next(v6)
	}
	return out
}

// change drops every k-th prefix and adds as many new ones.
func (l *lists) change(ps []netip.Prefix, k int) []netip.Prefix {
	var out []netip.Prefix
	dropped := 0
	for i, p := range ps {
		if i%k == k/2 {
			dropped++
			continue
		}
		out = append(out, p)
	}
	for i := 0; i < dropped; i++ {
		out = append(out, l.next(ps[0].Addr().Is6()))
	}
	return out
}

func writeList(t *testing.T, path string, ps []netip.Prefix) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# a route list\n")
	for _, p := range ps {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ip(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return testns.IP(t, ns, args...)
}

// ipRoute is a route as `ip -j route show` prints it.
type ipRoute struct {
	Dst      string   `json:"dst"`
	Gateway  string   `json:"gateway"`
	Dev      string   `json:"dev"`
	Protocol string   `json:"protocol"`
	Prefsrc  string   `json:"prefsrc"`
	Flags    []string `json:"flags"`
}

// tableRoutes returns what ip sees in the benchmark's table, as
// "prefix via gateway dev D src S proto P" lines, sorted.
func tableRoutes(t *testing.T, ns string, v6 bool) []string {
	t.Helper()
	fam := "-4"
	if v6 {
		fam = "-6"
	}
	var rs []ipRoute
	out := ip(t, ns, "-j", fam, "route", "show", "table", fmt.Sprint(table))
	if strings.TrimSpace(out) == "" {
		out = "[]"
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatal(err)
	}
	lines := make([]string, 0, len(rs))
	for _, r := range rs {
		dst := r.Dst
		if !strings.Contains(dst, "/") {
			if v6 {
				dst += "/128"
			} else {
				dst += "/32"
			}
		}
		lines = append(lines, fmt.Sprintf("%s via %s dev %s src %s proto %s", dst, r.Gateway, r.Dev, r.Prefsrc, r.Protocol))
	}
	slices.Sort(lines)
	return lines
}

// wanted is tableRoutes for a list tunroute was asked for.
func wanted(ps []netip.Prefix, v6 bool) []string {
	gw, src := "10.30.0.1", "10.30.0.2"
	if v6 {
		gw, src = "2001:db8:30::1", "2001:db8:30::2"
	}
	lines := make([]string, 0, len(ps))
	for _, p := range ps {
		lines = append(lines, fmt.Sprintf("%s via %s dev wg0 src %s proto 116", p, gw, src))
	}
	slices.Sort(lines)
	return lines
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	for _, l := range want {
		w[l] = true
	}
	shown := 0
	for _, l := range got {
		if !w[l] && shown < 5 {
			t.Errorf("%s: unexpected: %s", what, l)
			shown++
		}
	}
	for _, l := range want {
		if !g[l] && shown < 10 {
			t.Errorf("%s: missing: %s", what, l)
			shown++
		}
	}
	t.Fatalf("%s: ip shows %d routes, want %d", what, len(got), len(want))
}

// pipeline is what `tunroute plan` and `apply` do in one namespace:
// config, compact observation, compile, diff. Its config reads keep the
// lists between them, as tunroute run's do: the 1% change is read as an
// edit of the list before (config.ListCache), and the table must still
// be exactly the list.
type pipeline struct {
	t     *testing.T
	ns    string
	cfg   string
	h     *kernel.Handle
	prog  [][2]int
	lists config.ListCache
}

func (p *pipeline) plan() *plan.Plan {
	p.t.Helper()
	cfg, err := config.Load(p.cfg, config.Options{TableNames: map[string]uint32{}, Lists: &p.lists})
	if err != nil {
		p.t.Fatal(err)
	}
	obs, err := p.h.ObserveWith(kernel.ObserveOptions{CompactRoutes: true})
	if err != nil {
		p.t.Fatal(err)
	}
	res, err := compile.Compile(cfg, obs, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	pl, err := plan.Diff(res.State, obs)
	if err != nil {
		p.t.Fatal(err)
	}
	return pl
}

func (p *pipeline) down() *plan.Plan {
	p.t.Helper()
	obs, err := p.h.ObserveWith(kernel.ObserveOptions{CompactRoutes: true})
	if err != nil {
		p.t.Fatal(err)
	}
	return plan.Down(obs)
}

func (p *pipeline) apply(pl *plan.Plan) {
	p.t.Helper()
	p.prog = nil
	if err := plan.Apply(p.h, pl.Ops); err != nil {
		p.t.Fatal(err)
	}
}

func counts(pl *plan.Plan) string {
	a, c, d := pl.Counts()
	return fmt.Sprintf("%d add %d change %d delete", a, c, d)
}

func TestRouteLists(t *testing.T) {
	testns.Need(t, "ip")
	ns := fmt.Sprintf("tr-routes-%d", os.Getpid())
	testns.NewNS(t, ns)
	exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0").Run()
	for _, c := range []string{"link add wg0 type veth peer name wgpeer", "addr add 10.30.0.2/24 dev wg0",
		"addr add 2001:db8:30::2/64 dev wg0 nodad", "link set wg0 up", "link set wgpeer up"} {
		ip(t, ns, strings.Fields(c)...)
	}

	n4, n6 := 20000, 5000
	if testing.Short() {
		n4, n6 = 4000, 1000
	}
	dir := t.TempDir()
	gen := newLists(1)
	l4, l6 := gen.make(false, n4), gen.make(true, n6)
	writeList(t, filepath.Join(dir, "list4.txt"), l4)
	writeList(t, filepath.Join(dir, "list6.txt"), l6)
	identity, err := os.ReadFile("identity.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "tunroute.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(identity, `routes:
  - {to_file: list4.txt, via: vpn, table: %d}
  - {to_file: list6.txt, via: vpn, table: %d}
`, table, table), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := kernel.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := &pipeline{t: t, ns: ns, cfg: cfgPath, h: h}
	h.SetProgress(func(done, total int) { p.prog = append(p.prog, [2]int{done, total}) })
	check := func(what string, l4, l6 []netip.Prefix) {
		t.Helper()
		sameLines(t, what+", IPv4", tableRoutes(t, ns, false), wanted(l4, false))
		sameLines(t, what+", IPv6", tableRoutes(t, ns, true), wanted(l6, true))
	}

	// From scratch: exactly the lists.
	pl := p.plan()
	if a, c, d := pl.Counts(); a < n4+n6 || c != 0 || d != 0 {
		t.Fatalf("first plan: %s", counts(pl))
	}
	p.apply(pl)
	check("applied", l4, l6)
	if last := p.prog[len(p.prog)-1]; last[0] != last[1] || last[1] < n4+n6 {
		t.Errorf("progress ended at %v", last)
	}
	if pl := p.plan(); !pl.Empty() {
		t.Fatalf("the plan after apply is not empty: %s\n%.2000s", counts(pl), pl.Text())
	}

	// 1% of each list replaced: exactly that changes.
	c4, c6 := gen.change(l4, 100), gen.change(l6, 100)
	writeList(t, filepath.Join(dir, "list4.txt"), c4)
	writeList(t, filepath.Join(dir, "list6.txt"), c6)
	pl = p.plan()
	if got, want := counts(pl), fmt.Sprintf("%d add 0 change %d delete", (n4+n6)/100, (n4+n6)/100); got != want {
		t.Fatalf("1%% change: %s, want %s", got, want)
	}
	for _, op := range pl.Ops {
		if op.RouteSet == nil {
			t.Errorf("the change is not made of route sets: %s", op)
		}
	}
	p.apply(pl)
	check("changed", c4, c6)
	if pl := p.plan(); !pl.Empty() {
		t.Fatalf("the plan after the change is not empty: %s", counts(pl))
	}

	// Undone (what --confirm's timeout does), it is as before; and again.
	if err := plan.Undo(h, pl.Ops, plan.All(pl.Ops)); err != nil {
		t.Fatal(err)
	}
	check("undone", l4, l6)
	p.apply(pl)
	check("redone", c4, c6)

	// A failure half way through a set (someone adds a route where the
	// set is going while the plan is applied) leaves the table as it was.
	bigger := append(slices.Clone(c4), gen.make(false, n4/2)...)
	writeList(t, filepath.Join(dir, "list4.txt"), bigger)
	pl = p.plan()
	if got, want := counts(pl), fmt.Sprintf("%d add 0 change 0 delete", n4/2); got != want {
		t.Fatalf("growing the list: %s, want %s", got, want)
	}
	victim := bigger[len(c4)+n4/4]
	ip(t, ns, "route", "add", victim.String(), "via", "10.30.0.1", "table", fmt.Sprint(table), "proto", "static")
	err = plan.Apply(h, pl.Ops)
	var se *kernel.RouteSetError
	if !errors.As(err, &se) || se.Dst != victim || !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), victim.String()) {
		t.Fatalf("apply over a foreign route: %v", err)
	}
	t.Logf("the failed apply said: %v", err)
	ip(t, ns, "route", "del", victim.String(), "table", fmt.Sprint(table), "proto", "static")
	check("after the failed apply", c4, c6)

	// The same for a failure half way through a delete: someone removes
	// one of the routes down is about to.
	pl = p.down()
	gone := c4[n4/3]
	ip(t, ns, "route", "del", gone.String(), "table", fmt.Sprint(table))
	err = plan.Apply(h, pl.Ops)
	if !errors.As(err, &se) || se.Dst != gone || !errors.Is(err, unix.ESRCH) {
		t.Fatalf("down with a route gone: %v", err)
	}
	check("after the failed down", slices.DeleteFunc(slices.Clone(c4), func(p netip.Prefix) bool { return p == gone }), c6)

	// Down leaves nothing of tunroute's: routes, rules, nexthop objects.
	p.apply(p.down())
	check("down", nil, nil)
	for _, fam := range []string{"-4", "-6"} {
		if out := ip(t, ns, fam, "route", "show", "table", "all", "proto", "116"); strings.TrimSpace(out) != "" {
			t.Errorf("routes left after down:\n%.500s", out)
		}
		var rules []struct {
			Priority int    `json:"priority"`
			Protocol string `json:"protocol"`
		}
		if err := json.Unmarshal([]byte(ip(t, ns, "-j", "-d", fam, "rule", "show")), &rules); err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.Protocol != "kernel" {
				t.Errorf("rule left after down: %+v", r)
			}
		}
	}
	if out := ip(t, ns, "nexthop", "show"); strings.TrimSpace(out) != "" {
		t.Errorf("nexthop objects left after down:\n%s", out)
	}
}
