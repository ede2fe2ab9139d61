package kernel

import (
	"errors"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

func via(gw, dev string) state.Nexthop {
	nh := state.Nexthop{Dev: dev}
	if gw != "" {
		nh.Gateway = addr(gw)
	}
	return nh
}

// owned returns a tunroute route.
func owned(table uint32, typ state.RouteType, dst string, nhs ...state.Nexthop) *state.Route {
	return &state.Route{Table: table, Type: typ, Dst: pfx(dst), Protocol: state.Proto, Nexthops: nhs}
}

func ownedRule(fam int, pref uint32, f func(r *state.Rule)) *state.Rule {
	r := state.NewRule(fam)
	r.Priority, r.Protocol = pref, state.Proto
	f(&r)
	return &r
}

// ipView is what iproute2 sees in a namespace.
type ipView struct {
	Links  []state.Link
	Addrs  []state.Addr
	Routes []state.Route
	Rules  []state.Rule
	dev    map[string]int
}

func viewOf(t *testing.T, ns string) ipView {
	settle(t, ns)
	v := ipView{Links: oracleLinks(t, ns), Addrs: oracleAddrs(t, ns), dev: map[string]int{}}
	for _, l := range v.Links {
		v.dev[l.Name] = l.Index
	}
	v.Routes = append(oracleRoutes(t, ns, 4, v.dev), oracleRoutes(t, ns, 6, v.dev)...)
	v.Rules = append(oracleRules(t, ns, 4), oracleRules(t, ns, 6)...)
	return v
}

// sameSet compares two lists ignoring order.
func sameSet[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = js(got[i])
	}
	for i := range want {
		w[i] = js(want[i])
	}
	sort.Strings(g)
	sort.Strings(w)
	for _, d := range compareList(what, g, w) {
		t.Error(d)
	}
}

// asKernelShows fills in what the kernel adds to a route we send: the
// ifindex, the IPv6 default metric, lo on IPv6 reject routes, the
// single-path flags, medium preference.
func asKernelShows(r state.Route, dev map[string]int) state.Route {
	r.Nexthops = append([]state.Nexthop(nil), r.Nexthops...)
	if r.Is6() {
		if r.Metric == 0 {
			r.Metric = 1024
		}
		if len(r.Nexthops) == 0 {
			r.Nexthops = []state.Nexthop{{Dev: "lo"}}
		}
	}
	for i := range r.Nexthops {
		r.Nexthops[i].Index = dev[r.Nexthops[i].Dev]
	}
	if len(r.Nexthops) == 1 {
		r.Nexthops[0].Flags = r.Flags
	}
	return r
}

func ops(action state.Action, objs ...any) []state.Op {
	var out []state.Op
	for _, o := range objs {
		op := state.Op{Action: action}
		switch o := o.(type) {
		case *state.Route:
			op.Route = o
		case *state.Addr:
			op.Addr = o
		case *state.Rule:
			op.Rule = o
		case *state.Link:
			op.Link = o
		}
		out = append(out, op)
	}
	return out
}

func allTrue(b []bool) bool {
	for _, x := range b {
		if !x {
			return false
		}
	}
	return true
}

const foreignState = vethVA + `
addr add 198.51.100.1/24 dev vb
-6 addr add 2001:db8:5::1/64 dev va nodad
route add 203.0.113.0/24 via 10.1.0.254 table 100 proto static
route add 198.51.100.128/25 via 10.1.0.254
route add 10.99.0.0/16 via 10.1.0.254 table 1000 metric 10
rule add pref 300 lookup 100
-6 rule add pref 300 lookup 100
`

func TestExecuteAddReplaceDelete(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "exec")
	quietIPv6(t, ns)
	ipScript(t, ns, foreignState)
	before := viewOf(t, ns)
	h := openT(t, ns)

	addrs := []*state.Addr{
		{Dev: "va", Prefix: pfx("10.1.0.5/24"), Label: "va", Proto: state.Proto},
		{Dev: "vb", Prefix: pfx("203.0.113.7/24"), Broadcast: addr("203.0.113.255"), Flags: state.AddrNoPrefixRoute, Label: "vb", Proto: state.Proto},
		{Dev: "va", Prefix: pfx("2001:db8:6::1/64"), Flags: state.AddrNoDAD, Proto: state.Proto},
		{Dev: "vb", Prefix: pfx("10.9.0.1/32"), Peer: pfx("10.9.0.2/32"), Label: "vb", Proto: state.Proto},
		{Dev: "va", Prefix: pfx("10.20.0.1/24"), Label: "va:t", Proto: state.Proto, ValidLft: 1000, PreferredLft: 500},
	}
	mp := owned(70000, state.RouteUnicast, "10.61.0.0/16", via("10.1.0.250", "va"), via("198.51.100.250", "vb"))
	mp.Nexthops[0].Weight, mp.Nexthops[1].Weight = 3, 1
	onlink := owned(state.TableMain, state.RouteUnicast, "10.62.0.0/16", via("10.77.0.1", "va"))
	onlink.Flags = state.NexthopOnlink
	tos := owned(state.TableMain, state.RouteUnicast, "10.60.0.0/16", via("10.1.0.253", "va"))
	tos.TOS = 0x10
	prefsrc := owned(state.TableMain, state.RouteUnicast, "10.70.0.0/16", via("", "va"))
	prefsrc.Scope, prefsrc.PrefSrc = state.ScopeLink, addr("10.1.0.5")
	metric := owned(100, state.RouteUnicast, "203.0.113.0/24", via("10.1.0.253", "va"))
	metric.Metric = 10
	mtu := owned(100, state.RouteUnicast, "10.80.0.0/16", via("10.1.0.254", "va"))
	mtu.MTU = 1300
	srcRoute := owned(state.TableMain, state.RouteUnicast, "2001:db8:100::/48", via("2001:db8:5::fe", "va"))
	srcRoute.Src = pfx("2001:db8:5::/64")
	pref := owned(2000, state.RouteUnicast, "2001:db8:101::/48", via("2001:db8:5::fe", "va"))
	pref.Pref, pref.Metric, pref.MTU = 1, 7, 1300
	mp6 := owned(state.TableMain, state.RouteUnicast, "2001:db8:102::/48", via("2001:db8:5::fe", "va"), via("2001:db8:5::fd", "va"))
	mp6.Nexthops[0].Weight, mp6.Nexthops[1].Weight = 2, 1
	routes := []*state.Route{
		owned(state.TableMain, state.RouteUnicast, "0.0.0.0/1", via("10.1.0.254", "va")),
		metric, mp, onlink, tos, prefsrc, mtu, srcRoute, pref, mp6,
		owned(1000, state.RouteBlackhole, "10.50.0.0/16"),
		owned(1000, state.RouteThrow, "10.53.0.0/16"),
		owned(state.TableMain, state.RouteUnicast, "10.64.0.0/16", via("fe80::1", "va")),
		owned(1000, state.RouteUnreachable, "2001:db8:50::/48"),
		owned(70000, state.RouteUnicast, "::/0", via("2001:db8:5::fe", "va")),
	}
	rules := []*state.Rule{
		ownedRule(4, 100, func(r *state.Rule) { r.Src, r.Table = pfx("10.1.0.0/24"), 1000 }),
		ownedRule(4, 101, func(r *state.Rule) {
			r.Invert, r.Mark, r.Mask, r.IIF, r.OIF, r.IPProto, r.TOS = true, 0x10, 0xff, "va", "vb", 6, 0x10
			r.SPort, r.DPort = &state.PortRange{Start: 1000, End: 2000}, &state.PortRange{Start: 443, End: 443}
			r.UID, r.Table, r.SuppressPrefixLen = &state.UIDRange{Start: 100, End: 200}, 70000, 0
		}),
		ownedRule(4, 99, func(r *state.Rule) { r.Action, r.Goto = state.ActionGoto, 100 }),
		ownedRule(4, 103, func(r *state.Rule) { r.Action, r.Mark, r.Mask = state.ActionBlackhole, 7, 0xffffffff }),
		ownedRule(4, 104, func(r *state.Rule) { r.Realms, r.Table = 3, 300 }),
		ownedRule(4, 105, func(r *state.Rule) { r.Action, r.TunID = state.ActionNop, 5 }),
		ownedRule(4, 106, func(r *state.Rule) { r.Table, r.SuppressIfGroup = 100, 5 }),
		ownedRule(4, 107, func(r *state.Rule) { r.Action, r.IIF, r.IIFDetached = state.ActionProhibit, "gone0", true }),
		ownedRule(4, 108, func(r *state.Rule) { r.L3MDev = true }),
		ownedRule(6, 200, func(r *state.Rule) { r.Src, r.Dst, r.Table = pfx("2001:db8:5::/64"), pfx("2001:db8::/32"), 1000 }),
		ownedRule(6, 201, func(r *state.Rule) {
			r.Action, r.IIF, r.IPProto, r.DPort = state.ActionUnreachable, "va", 17, &state.PortRange{Start: 53, End: 53}
		}),
	}
	var adds []state.Op
	for _, a := range addrs {
		adds = append(adds, ops(state.Add, a)...)
	}
	for _, r := range routes {
		adds = append(adds, ops(state.Add, r)...)
	}
	for _, r := range rules {
		adds = append(adds, ops(state.Add, r)...)
	}
	applied, err := h.Execute(adds)
	if err != nil || !allTrue(applied) {
		t.Fatalf("Execute(adds) = %v, %v", applied, err)
	}

	after := viewOf(t, ns)
	var gotRoutes, wantRoutes []state.Route
	for _, r := range after.Routes {
		if r.Owned() {
			gotRoutes = append(gotRoutes, r)
		}
	}
	for _, r := range routes {
		wantRoutes = append(wantRoutes, asKernelShows(*r, after.dev))
	}
	sameSet(t, "owned routes", gotRoutes, wantRoutes)
	var gotRules, wantRules []state.Rule
	for _, r := range after.Rules {
		if r.Owned() {
			gotRules = append(gotRules, r)
		}
	}
	for _, r := range rules {
		wantRules = append(wantRules, *r)
	}
	sameSet(t, "owned rules", gotRules, wantRules)
	checkAddrs(t, h, after, addrs)
	checkUntouched(t, before, after)

	// Replace: a new gateway for 0.0.0.0/1, new lifetimes for 10.1.0.5.
	newDefault := owned(state.TableMain, state.RouteUnicast, "0.0.0.0/1", via("10.1.0.253", "va"))
	newAddr := *addrs[0]
	newAddr.ValidLft, newAddr.PreferredLft = 3000, 2000
	repl := []state.Op{
		{Action: state.Replace, Route: newDefault, PrevRoute: routes[0]},
		{Action: state.Replace, Addr: &newAddr, PrevAddr: addrs[0]},
	}
	if applied, err := h.Execute(repl); err != nil || !allTrue(applied) {
		t.Fatalf("Execute(replace) = %v, %v", applied, err)
	}
	out := ipn(t, ns, "route", "show", "0.0.0.0/1")
	if !strings.Contains(out, "via 10.1.0.253") || strings.Count(out, "\n") != 1 {
		t.Errorf("after replace: %q", out)
	}
	for _, a := range oracleAddrs(t, ns) {
		if a.Prefix == newAddr.Prefix && (!near(a.ValidLft, 3000) || !near(a.PreferredLft, 2000)) {
			t.Errorf("after replace: %s", js(a))
		}
	}
	routes[0] = newDefault

	// Delete everything again, newest first: the namespace is as before.
	var dels []state.Op
	for i := len(adds) - 1; i >= 0; i-- {
		dels = append(dels, adds[i].Inverse())
	}
	if applied, err := h.Execute(dels); err != nil || !allTrue(applied) {
		t.Fatalf("Execute(deletes) = %v, %v", applied, err)
	}
	final := viewOf(t, ns)
	for _, d := range compareList("links", final.Links, before.Links) {
		t.Error(d)
	}
	for _, d := range compareList("addrs", final.Addrs, before.Addrs) {
		t.Error(d)
	}
	for _, d := range compareList("routes", final.Routes, before.Routes) {
		t.Error(d)
	}
	for _, d := range compareList("rules", final.Rules, before.Rules) {
		t.Error(d)
	}

	// Deletes carry tunroute's protocol: a foreign route or rule with the
	// same key is not ours to delete.
	foreignRoute := owned(100, state.RouteUnicast, "203.0.113.0/24")
	foreignRule := ownedRule(4, 300, func(r *state.Rule) { r.Table = 100 })
	for _, op := range ops(state.Delete, foreignRoute, foreignRule) {
		applied, err := h.Execute([]state.Op{op})
		if err == nil || applied[0] {
			t.Errorf("%s: deleted a foreign object (%v)", op, applied)
		} else if !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("%s: %v", op, err)
		}
	}
	for _, d := range compareList("routes", viewOf(t, ns).Routes, before.Routes) {
		t.Error(d)
	}
	for _, d := range compareList("rules", viewOf(t, ns).Rules, before.Rules) {
		t.Error(d)
	}
}

// checkAddrs checks that ip shows each added address with its
// attributes, and Observe shows tunroute's IFA_PROTO on exactly those.
func checkAddrs(t *testing.T, h *Handle, v ipView, added []*state.Addr) {
	t.Helper()
	s := observeT(t, h, ObserveOptions{})
	const kept = state.AddrNoDAD | state.AddrNoPrefixRoute
	for _, want := range added {
		found := false
		for _, a := range v.Addrs {
			if a.Prefix != want.Prefix || a.Dev != want.Dev {
				continue
			}
			found = true
			if a.Peer != want.Peer || a.Broadcast != want.Broadcast || a.Scope != want.Scope ||
				a.Label != want.Label || a.Flags&kept != want.Flags&kept ||
				!near(a.ValidLft, want.ValidLft) || !near(a.PreferredLft, want.PreferredLft) {
				t.Errorf("address %s: ip shows %s", want.Prefix, js(a))
			}
		}
		if !found {
			t.Errorf("address %s not shown by ip", want.Prefix)
		}
	}
	n := 0
	for _, a := range s.Addrs {
		if a.Owned() {
			n++
		}
		if a.Prefix == pfx("10.1.0.1/24") && a.Owned() {
			t.Errorf("foreign address observed as owned: %s", js(a))
		}
	}
	if n != len(added) {
		t.Errorf("Observe shows %d owned addresses, want %d", n, len(added))
	}
}

// checkUntouched checks that every object in before is still in after.
func checkUntouched(t *testing.T, before, after ipView) {
	t.Helper()
	contains := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	var all []string
	for _, r := range after.Routes {
		all = append(all, js(r))
	}
	for _, r := range after.Rules {
		all = append(all, js(r))
	}
	for _, a := range after.Addrs {
		all = append(all, js(a))
	}
	for _, r := range before.Routes {
		if !contains(all, js(r)) {
			t.Errorf("foreign route changed or gone: %s", js(r))
		}
	}
	for _, r := range before.Rules {
		if !contains(all, js(r)) {
			t.Errorf("foreign rule changed or gone: %s", js(r))
		}
	}
	for _, a := range before.Addrs {
		if !contains(all, js(a)) {
			t.Errorf("foreign address changed or gone: %s", js(a))
		}
	}
}
