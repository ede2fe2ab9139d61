package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// ipDst reads a destination the way `ip -j route` prints it: "default",
// or a prefix whose length is left out when it covers one address.
func ipDst(s string, v6 bool) (netip.Prefix, error) {
	if s == "default" {
		if v6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), nil
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), nil
	}
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ipTable returns, as ip sees them, the destinations of table's routes of
// one family and protocol (0 for all), sorted.
func ipTable(t testing.TB, ns string, v6 bool, table uint32, proto state.Protocol) []string {
	t.Helper()
	var rs []struct {
		Dst      string `json:"dst"`
		Protocol string `json:"protocol"`
	}
	fam := "-4"
	if v6 {
		fam = "-6"
	}
	args := []string{fam, "route", "show", "table", fmt.Sprint(table)}
	if proto != 0 {
		args = append(args, "proto", fmt.Sprint(int(proto)))
	}
	ipJSON(t, ns, &rs, args...)
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		p, err := ipDst(r.Dst, v6)
		if err != nil {
			t.Fatalf("ip route: dst %q: %v", r.Dst, err)
		}
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	slices.Sort(out)
	return out
}

func sameDsts(t *testing.T, what string, got []string, want []netip.Prefix) {
	t.Helper()
	w := prefixStrings(want)
	if !slices.Equal(got, w) {
		t.Errorf("%s: ip shows %d routes, want %d", what, len(got), len(w))
		for _, d := range compareList(what, got, w) {
			t.Error(d)
		}
	}
}

// setNS is a namespace with va (10.1.0.1/24, 2001:db8:1::1/64) for route
// sets to go out of.
func setNS(t *testing.T, short string) (string, *Handle) {
	ns := newNS(t, short)
	quietIPv6(t, ns)
	ipScript(t, ns, vethVA+`
-6 addr add 2001:db8:1::1/64 dev va nodad
`)
	return ns, openT(t, ns)
}

func setOf(table uint32, gw string, dsts []netip.Prefix) *state.RouteSet {
	tmpl := state.Route{Table: table, Type: state.RouteUnicast, Protocol: state.Proto,
		Nexthops: []state.Nexthop{{Gateway: addr(gw), Dev: "va"}}}
	if addr(gw).Is6() {
		tmpl.Metric = 1024
	}
	return &state.RouteSet{Template: tmpl, Dsts: dsts}
}

// hostRoutes returns n /32s from 10.16.0.0 on (hostRoute).
func hostRoutes(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = hostRoute(i)
	}
	return out
}

func TestExecuteRouteSet(t *testing.T) {
	needRoot(t)
	ns, h := setNS(t, "rset")
	dsts := hostRoutes(4500) // several batches
	dsts = append(dsts, pfx("0.0.0.0/0"), pfx("10.200.0.0/16"), pfx("192.0.2.128/25"))
	set := setOf(100, "10.1.0.254", dsts)
	var calls [][2]int
	h.SetProgress(func(done, total int) { calls = append(calls, [2]int{done, total}) })
	applied, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: set}})
	if err != nil || !applied[0] {
		t.Fatalf("Execute = %v, %v", applied, err)
	}
	sameDsts(t, "after add", ipTable(t, ns, false, 100, state.Proto), dsts)
	if len(calls) < 5 || calls[len(calls)-1] != [2]int{len(dsts), len(dsts)} {
		t.Errorf("progress calls: %v", calls)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] <= calls[i-1][0] {
			t.Errorf("progress goes back: %v", calls)
		}
	}
	h.SetProgress(nil)
	// The routes are what a single route op would have made.
	got, err := h.ObserveRoutes(RouteFilter{Family: 4, Table: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		want := set.Route(got[i].Dst)
		if !want.Equal(&got[i]) {
			t.Fatalf("observed %s, want %s", js(got[i]), js(want))
		}
	}

	applied, err = h.Execute([]state.Op{{Action: state.Delete, RouteSet: set}})
	if err != nil || !applied[0] {
		t.Fatalf("delete: Execute = %v, %v", applied, err)
	}
	sameDsts(t, "after delete", ipTable(t, ns, false, 100, 0), nil)

	// IPv6, and an empty set between two routes.
	var d6 []netip.Prefix
	for i := 0; i < 1500; i++ {
		d6 = append(d6, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}), 128))
	}
	d6 = append(d6, pfx("::/0"), pfx("2001:db8:20::/48"))
	set6 := setOf(100, "2001:db8:1::fe", d6)
	r1 := owned(100, state.RouteUnicast, "10.30.0.0/16", via("10.1.0.254", "va"))
	mixed := []state.Op{{Action: state.Add, Route: r1}, {Action: state.Add, RouteSet: set6},
		{Action: state.Add, RouteSet: &state.RouteSet{Template: set6.Template}}}
	applied, err = h.Execute(mixed)
	if err != nil || !slices.Equal(applied, []bool{true, true, true}) {
		t.Fatalf("IPv6: Execute = %v, %v", applied, err)
	}
	sameDsts(t, "IPv6", ipTable(t, ns, true, 100, state.Proto), d6)
	sameDsts(t, "IPv4 beside", ipTable(t, ns, false, 100, state.Proto), []netip.Prefix{r1.Dst})
	if _, err := h.Execute([]state.Op{{Action: state.Delete, RouteSet: set6}}); err != nil {
		t.Fatal(err)
	}
	sameDsts(t, "IPv6 deleted", ipTable(t, ns, true, 100, state.Proto), nil)

	// Refused before anything is sent.
	bad := setOf(100, "10.1.0.254", []netip.Prefix{pfx("10.40.0.0/16"), pfx("2001:db8:40::/48")})
	if _, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: bad}}); err == nil || !strings.Contains(err.Error(), "family") {
		t.Errorf("mixed families: %v", err)
	}
	bad = &state.RouteSet{Template: state.Route{Table: 100, Type: state.RouteUnicast, Protocol: state.Proto,
		Nexthops: []state.Nexthop{{Dev: "nosuch"}}}, Dsts: []netip.Prefix{pfx("10.40.0.0/16")}}
	if _, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: bad}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing device: %v", err)
	}
}

// TestExecuteRouteSetAllOrNothing injects failures at the start, in the
// middle and at the end of a set that spans batches, and a failure of
// another op that cuts a set short: the table must be as before.
func TestExecuteRouteSetAllOrNothing(t *testing.T) {
	needRoot(t)
	ns, h := setNS(t, "rsetfail")
	dsts := hostRoutes(5000) // more than orderMin: sent shuffled
	for _, at := range []int{0, 999, 1000, 2345, 4999} {
		t.Run(fmt.Sprint("add fails at ", at), func(t *testing.T) {
			// Someone else's route where the set wants one of its own.
			ipn(t, ns, "route", "add", dsts[at].String(), "via", "10.1.0.254", "table", "100", "proto", "static")
			defer ipn(t, ns, "route", "del", dsts[at].String(), "table", "100", "proto", "static")
			set := setOf(100, "10.1.0.254", dsts)
			applied, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: set}})
			var oe *OpError
			var se *RouteSetError
			if applied[0] || !errors.As(err, &oe) || oe.Index != 0 || !errors.As(err, &se) || se.Dst != dsts[at] ||
				!errors.Is(err, unix.EEXIST) || se.Failed != 1 || se.Undo != nil {
				t.Fatalf("Execute = %v, %v", applied, err)
			}
			want := fmt.Sprintf("route to %s: file exists", dsts[at])
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			sameDsts(t, "owned after the failure", ipTable(t, ns, false, 100, state.Proto), nil)
			sameDsts(t, "all after the failure", ipTable(t, ns, false, 100, 0), []netip.Prefix{dsts[at]})
		})
	}

	t.Run("delete fails", func(t *testing.T) {
		set := setOf(100, "10.1.0.254", dsts)
		if _, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: set}}); err != nil {
			t.Fatal(err)
		}
		gone := dsts[1500]
		if len(dsts) < orderMin {
			t.Fatal("the set is too small to be shuffled")
		}
		ipn(t, ns, "route", "del", gone.String(), "table", "100")
		applied, err := h.Execute([]state.Op{{Action: state.Delete, RouteSet: set}})
		var se *RouteSetError
		if applied[0] || !errors.As(err, &se) || se.Dst != gone || !errors.Is(err, unix.ESRCH) {
			t.Fatalf("Execute = %v, %v", applied, err)
		}
		rest := slices.Delete(slices.Clone(dsts), 1500, 1501)
		sameDsts(t, "after the failed delete", ipTable(t, ns, false, 100, state.Proto), rest)
		// The routes put back are the same routes.
		got, err := h.ObserveRoutes(RouteFilter{Family: 4, Table: 100})
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if want := set.Route(got[i].Dst); !want.Equal(&got[i]) {
				t.Fatalf("put back %s, want %s", js(got[i]), js(want))
			}
		}
		rs := &state.RouteSet{Template: set.Template, Dsts: rest}
		if _, err := h.Execute([]state.Op{{Action: state.Delete, RouteSet: rs}}); err != nil {
			t.Fatal(err)
		}
		sameDsts(t, "after delete", ipTable(t, ns, false, 100, 0), nil)
	})

	t.Run("cut short by another op", func(t *testing.T) {
		noDev := owned(100, state.RouteUnicast, "10.12.0.0/16", state.Nexthop{Index: 9999})
		first := owned(100, state.RouteUnicast, "10.11.0.0/16", via("10.1.0.254", "va"))
		set := setOf(100, "10.1.0.254", dsts)
		applied, err := h.Execute([]state.Op{{Action: state.Add, Route: first}, {Action: state.Add, Route: noDev},
			{Action: state.Add, RouteSet: set}})
		var oe *OpError
		if !slices.Equal(applied, []bool{true, false, false}) || !errors.As(err, &oe) || oe.Index != 1 || !errors.Is(err, unix.ENODEV) {
			t.Fatalf("Execute = %v, %v", applied, err)
		}
		sameDsts(t, "after the failure", ipTable(t, ns, false, 100, 0), []netip.Prefix{first.Dst})
		if _, err := h.Execute([]state.Op{{Action: state.Delete, Route: first}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("two sets, the second fails", func(t *testing.T) {
		a := setOf(100, "10.1.0.254", dsts[:1200])
		b := setOf(100, "10.1.0.254", dsts[1200:])
		ipn(t, ns, "route", "add", dsts[4000].String(), "via", "10.1.0.254", "table", "100", "proto", "static")
		defer ipn(t, ns, "route", "del", dsts[4000].String(), "table", "100", "proto", "static")
		applied, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: a}, {Action: state.Add, RouteSet: b}})
		var oe *OpError
		if !slices.Equal(applied, []bool{true, false}) || !errors.As(err, &oe) || oe.Index != 1 {
			t.Fatalf("Execute = %v, %v", applied, err)
		}
		sameDsts(t, "after the failure", ipTable(t, ns, false, 100, state.Proto), a.Dsts)
		if _, err := h.Execute([]state.Op{{Action: state.Delete, RouteSet: a}}); err != nil {
			t.Fatal(err)
		}
	})
}

// ipNexthops returns `ip nexthop show` in ns, one object a line.
func ipNexthops(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(ipn(t, ns, "nexthop", "show")), "\n") {
		if l != "" {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// TestRouteSetNexthopObjects: a set's routes go in through a nexthop
// object of tunroute's own, read back as the plain routes they stand for
// (the same as a route op makes), shared by sets with the same next hop,
// and removed with the last route that uses it.
func TestRouteSetNexthopObjects(t *testing.T) {
	needRoot(t)
	ns, h := setNS(t, "rsetnh")
	link := state.ScopeLink
	cases := []struct {
		name string
		tmpl state.Route
		dst  string
	}{
		{"v4 gateway", state.Route{Type: state.RouteUnicast, PrefSrc: addr("10.1.0.1"), Nexthops: []state.Nexthop{via("10.1.0.254", "va")}}, "10.50.0.0/16"},
		{"v4 device", state.Route{Type: state.RouteUnicast, Scope: link, Nexthops: []state.Nexthop{via("", "va")}}, "10.51.0.0/16"},
		{"v4 onlink", state.Route{Type: state.RouteUnicast, Nexthops: []state.Nexthop{{Gateway: addr("192.0.2.77"), Dev: "va", Flags: state.NexthopOnlink}}}, "10.52.0.0/16"},
		{"v4 mtu metric", state.Route{Type: state.RouteUnicast, Metric: 20, MTU: 1400, Nexthops: []state.Nexthop{via("10.1.0.253", "va")}}, "10.53.0.0/16"},
		{"v6 gateway", state.Route{Type: state.RouteUnicast, Metric: 1024, PrefSrc: addr("2001:db8:1::1"), Nexthops: []state.Nexthop{via("2001:db8:1::fe", "va")}}, "2001:db8:50::/48"},
		{"v6 device", state.Route{Type: state.RouteUnicast, Metric: 1024, Nexthops: []state.Nexthop{via("", "va")}}, "2001:db8:51::/48"},
		{"v4 via v6", state.Route{Type: state.RouteUnicast, Nexthops: []state.Nexthop{via("2001:db8:1::fe", "va")}}, "10.54.0.0/16"},
	}
	for _, c := range cases {
		set, plain := c.tmpl, c.tmpl
		set.Table, set.Protocol = 100, state.Proto
		plain.Table, plain.Protocol, plain.Dst = 101, state.Proto, pfx(c.dst)
		if _, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: &state.RouteSet{Template: set, Dsts: []netip.Prefix{pfx(c.dst)}}},
			{Action: state.Add, Route: &plain}}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if got := ipNexthops(t, ns); len(got) != 6 || !strings.Contains(got[0], "proto 116") {
		t.Errorf("nexthop objects: %q", got)
	}
	// The set's routes use the objects (but for an IPv4 route via an
	// IPv6 gateway), the route ops' do not.
	for _, fam := range []string{"-4", "-6"} {
		for _, line := range strings.Split(strings.TrimSpace(ipn(t, ns, fam, "route", "show", "table", "100")), "\n") {
			if strings.Contains(line, "nhid") == strings.HasPrefix(line, "10.54.") {
				t.Errorf("table 100: %s", line)
			}
		}
		if out := ipn(t, ns, fam, "route", "show", "table", "101"); strings.Contains(out, "nhid") {
			t.Errorf("table 101:\n%s", out)
		}
	}
	// Read back, the set's routes are the plain ones.
	s := observeT(t, h, ObserveOptions{})
	byTable := map[uint32]map[string]string{100: {}, 101: {}}
	for _, r := range s.Routes {
		if m := byTable[r.Table]; m != nil && r.Owned() {
			r.Table = 0
			m[r.Dst.String()] = js(r)
		}
	}
	for _, c := range cases {
		if got, want := byTable[100][c.dst], byTable[101][c.dst]; got != want || got == "" {
			t.Errorf("%s: through the object %s, plain %s", c.name, got, want)
		}
	}
	// Another set with the same next hop shares its object.
	more := setOf(100, "10.1.0.254", []netip.Prefix{pfx("10.60.0.0/16")})
	more.Template.PrefSrc = addr("10.1.0.1")
	if _, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: more}}); err != nil {
		t.Fatal(err)
	}
	if got := ipNexthops(t, ns); len(got) != 6 {
		t.Errorf("a second set made another object: %q", got)
	}
	// Deleting some of an object's routes keeps it; the last takes it.
	del := func(c int) {
		t.Helper()
		set := cases[c].tmpl
		set.Table, set.Protocol = 100, state.Proto
		if _, err := h.Execute([]state.Op{{Action: state.Delete, RouteSet: &state.RouteSet{Template: set, Dsts: []netip.Prefix{pfx(cases[c].dst)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	del(0)
	if got := ipNexthops(t, ns); len(got) != 6 {
		t.Errorf("an object still used was deleted: %q", got)
	}
	if _, err := h.Execute([]state.Op{{Action: state.Delete, RouteSet: more}}); err != nil {
		t.Fatal(err)
	}
	if got := ipNexthops(t, ns); len(got) != 5 {
		t.Errorf("an unused object stays: %q", got)
	}
	for c := 1; c < len(cases); c++ {
		del(c)
	}
	if got := ipNexthops(t, ns); len(got) != 0 {
		t.Errorf("objects left after every set is gone: %q", got)
	}
	// A set whose add fails leaves no object behind either.
	ipn(t, ns, "route", "add", "10.70.0.0/16", "via", "10.1.0.254", "table", "100")
	bad := setOf(100, "10.1.0.254", []netip.Prefix{pfx("10.71.0.0/16"), pfx("10.70.0.0/16")})
	if _, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: bad}}); err == nil {
		t.Fatal("adding over a foreign route succeeded")
	}
	if got := ipNexthops(t, ns); len(got) != 0 {
		t.Errorf("objects left after a failed set: %q", got)
	}
	// Foreign objects are left alone, even unused.
	ipn(t, ns, "nexthop", "add", "id", "4242", "via", "10.1.0.254", "dev", "va")
	if _, err := h.Execute([]state.Op{{Action: state.Add, RouteSet: more}, {Action: state.Delete, RouteSet: more}}); err != nil {
		t.Fatal(err)
	}
	if got := ipNexthops(t, ns); len(got) != 1 || !strings.HasPrefix(got[0], "id 4242 ") {
		t.Errorf("nexthop objects: %q", got)
	}
}
