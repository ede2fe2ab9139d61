package kernel

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
)

// richState builds links, addresses, routes of every type in several
// tables, multipath, source-specific and onlink routes, and rules with
// every selector and action, both families.
const richState = `
link add va type veth peer name vb
link add vc type veth peer name vd
link add br0 type bridge
link set va up
link set vb up
link set vc up
link set br0 up
link set vd master br0
link set va alias tunroute:test group 5 mtu 1400
addr add 10.1.0.1/24 dev va
addr add 10.1.0.2/24 dev va
addr add 10.2.0.1/16 brd 10.2.255.255 dev va label va:x
addr add 10.9.0.1 peer 10.9.0.2/32 dev vc
addr add 10.3.0.1/24 dev vc scope link noprefixroute
addr add 2001:db8:1::1/64 dev va nodad
addr add 2001:db8:2::1/64 dev va nodad valid_lft 3000 preferred_lft 2000
addr add 2001:db8:3::1/64 dev va nodad preferred_lft 0
addr add 2001:db8:9::1 peer 2001:db8:9::2/128 dev vc nodad
addr add 198.51.100.1/24 dev vb
nexthop add id 10 via 10.1.0.254 dev va
route add 203.0.113.0/24 via 10.1.0.254 dev va table 100 proto 116 metric 5
route add 203.0.113.0/25 via 10.1.0.254 table 1000 src 10.1.0.1 mtu 1300
route add blackhole 10.50.0.0/16 table 100
route add unreachable 10.51.0.0/16 table 300
route add prohibit 10.52.0.0/16
route add throw 10.53.0.0/16 table 100
route add local 10.54.0.1 dev va table 100
route add broadcast 10.55.0.255 dev va table 100
route add multicast 224.1.0.0/16 dev va table 100
route add 10.60.0.0/16 tos 0x10 via 10.1.0.253
route add 10.61.0.0/16 nexthop via 10.1.0.250 weight 3 nexthop via 10.9.0.2 dev vc weight 1
route add 10.62.0.0/16 via 10.77.0.1 dev va onlink
route add 10.63.0.0/16 dev vb proto static metric 100
route add 10.64.0.0/16 via inet6 fe80::1 dev va
route add 10.65.0.0/16 nhid 10 table 70000
route add default via 198.51.100.254 table 70000 proto 116
-6 route add 2001:db8:100::/48 from 2001:db8:1::/64 via 2001:db8:1::fe dev va
-6 route add 2001:db8:101::/48 via 2001:db8:1::fe dev va pref high metric 7 table 2000
-6 route add 2001:db8:105::/48 via 2001:db8:1::fe dev va pref low table 2000 proto 116
-6 route add 2001:db8:102::/48 nexthop via 2001:db8:1::fe dev va weight 2 nexthop via 2001:db8:1::fd dev va
-6 route add blackhole 2001:db8:103::/48
-6 route add unreachable 2001:db8:106::/48 table 100
-6 route add 2001:db8:104::/48 via 2001:db8:1::fe dev va expires 600
-6 route add default via 2001:db8:1::fe dev va table 70000 mtu 1280
rule add pref 100 from 10.1.0.0/24 to 203.0.113.0/24 lookup 100
rule add pref 101 not from 10.2.0.0/16 iif va oif nosuch lookup 1000 proto 116
rule add pref 102 fwmark 0x10/0xff tos 0x10 ipproto tcp sport 1000-2000 dport 443 lookup main suppress_prefixlength 0
rule add pref 103 uidrange 1000-2000 goto 105
rule add pref 104 goto 999
rule add pref 105 fwmark 7 blackhole
rule add pref 106 iif lo unreachable
rule add pref 107 lookup 100 suppress_ifgroup 5
rule add pref 108 realms 3 lookup 300
rule add pref 109 tun_id 5 nop
rule add pref 110 l3mdev
rule add pref 111 iif gone0 prohibit proto static
rule add pref 112 from 10.1.0.1 lookup 70000
-6 rule add pref 200 from 2001:db8:1::/64 lookup 2000 proto 116
-6 rule add pref 201 to 2001:db8::/32 iif va dport 53 ipproto udp unreachable
-6 rule add pref 202 fwmark 0x5 uidrange 0-999 oif va lookup 70000
-6 rule add pref 203 not to 2001:db8:1::/64 sport 10-20 prohibit
addrlabel add prefix 2001:db8:77::/48 label 77
`

// quietIPv6 turns off DAD so that addresses settle at once.
func quietIPv6(t *testing.T, ns string) {
	sysctlIn(t, ns, "net.ipv6.conf.all.accept_dad", "0")
	sysctlIn(t, ns, "net.ipv6.conf.default.accept_dad", "0")
}

// settle waits until the kernel's background work (link-local addresses,
// their local routes) is done: counts unchanged over 200ms, nothing
// tentative.
func settle(t *testing.T, ns string) {
	sig := func() string {
		a := ipn(t, ns, "addr", "show")
		r4 := ipn(t, ns, "-4", "route", "show", "table", "all")
		r6 := ipn(t, ns, "-6", "route", "show", "table", "all")
		return fmt.Sprint(strings.Count(a, "inet"), strings.Count(a, "tentative"),
			strings.Count(r4, "\n"), strings.Count(r6, "\n"))
	}
	prev := sig()
	for i := 0; i < 50; i++ {
		time.Sleep(200 * time.Millisecond)
		cur := sig()
		if cur == prev && !strings.Contains(ipn(t, ns, "addr", "show"), "tentative") {
			return
		}
		prev = cur
	}
	t.Fatalf("namespace %s did not settle", ns)
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// near reports whether two countdowns read a moment apart agree.
func near(a, b uint32) bool { return a+3 >= b && b+3 >= a }

// compareList reports the differences between what Observe returned and
// what ip printed, element by element.
func compareList[T any](what string, got, want []T) []string {
	var diffs []string
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			diffs = append(diffs, fmt.Sprintf("%s[%d]: missing, ip has %s", what, i, js(want[i])))
		case i >= len(want):
			diffs = append(diffs, fmt.Sprintf("%s[%d]: extra %s", what, i, js(got[i])))
		case !reflect.DeepEqual(got[i], want[i]):
			diffs = append(diffs, fmt.Sprintf("%s[%d]:\n  observe: %s\n  ip:      %s", what, i, js(got[i]), js(want[i])))
		}
	}
	return diffs
}

// compareWithIP compares s field by field with iproute2's view of ns.
func compareWithIP(t *testing.T, ns string, s *state.State) []string {
	links := oracleLinks(t, ns)
	diffs := compareList("links", s.Links, links)
	dev := map[string]int{}
	for _, l := range links {
		dev[l.Name] = l.Index
	}

	addrs := oracleAddrs(t, ns)
	got := append([]state.Addr(nil), s.Addrs...)
	for i := range got {
		got[i].Proto = 0 // iproute2 6.1 does not print IFA_PROTO
		if i < len(addrs) && near(got[i].ValidLft, addrs[i].ValidLft) && near(got[i].PreferredLft, addrs[i].PreferredLft) {
			got[i].ValidLft, got[i].PreferredLft = addrs[i].ValidLft, addrs[i].PreferredLft
		}
	}
	diffs = append(diffs, compareList("addrs", got, addrs)...)

	want := append(oracleRoutes(t, ns, 4, dev), oracleRoutes(t, ns, 6, dev)...)
	routes := make([]state.Route, len(s.Routes))
	for i, r := range s.Routes {
		r.Flags &= 0x7f // ip prints the RTM_F_* bits under other names
		if len(r.Nexthops) > 0 {
			r.Nexthops = append([]state.Nexthop(nil), r.Nexthops...)
			for k := range r.Nexthops {
				r.Nexthops[k].Member = nil // ip shows the first member's src and pref only
			}
		}
		r.NHGroup = 0 // ip shows the group only in `ip nexthop`
		if i < len(want) && near(r.Expires, want[i].Expires) {
			r.Expires = want[i].Expires
		}
		routes[i] = r
	}
	diffs = append(diffs, compareList("routes", routes, want)...)

	rules := append(oracleRules(t, ns, 4), oracleRules(t, ns, 6)...)
	diffs = append(diffs, compareList("rules", s.Rules, rules)...)

	var labels []struct {
		Address   string `json:"address"`
		PrefixLen int    `json:"prefixlen"`
		Label     uint32 `json:"label"`
		Dev       string `json:"dev"`
	}
	ipJSON(t, ns, &labels, "addrlabel", "list")
	var wantLabels []state.AddrLabel
	for _, l := range labels {
		p := fmt.Sprintf("%s/%d", l.Address, l.PrefixLen)
		wantLabels = append(wantLabels, state.AddrLabel{Prefix: parseDst(t, p, true), Label: l.Label, Dev: l.Dev})
	}
	diffs = append(diffs, compareList("addrlabels", s.AddrLabels, wantLabels)...)
	return diffs
}

func TestObserveMatchesIP(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "obs")
	quietIPv6(t, ns)
	ipScript(t, ns, richState)
	sysctlIn(t, ns, "net.ipv4.conf.va.rp_filter", "2")
	sysctlIn(t, ns, "net.ipv4.ip_forward", "1")
	sysctlIn(t, ns, "net.ipv6.conf.all.forwarding", "1")
	sysctlIn(t, ns, "net.ipv4.fib_multipath_hash_policy", "1")
	sysctlIn(t, ns, "net.ipv4.fib_multipath_hash_seed", "1234")
	sysctlIn(t, ns, "net.ipv6.conf.vc.disable_ipv6", "1")
	h := openT(t, ns)

	var s *state.State
	for attempt := 1; ; attempt++ {
		settle(t, ns)
		var err error
		if s, err = h.Observe(); err != nil {
			t.Fatal(err)
		}
		diffs := compareWithIP(t, ns, s)
		if len(diffs) == 0 {
			break
		}
		if attempt == 3 {
			for _, d := range diffs {
				t.Error(d)
			}
			return
		}
		t.Logf("attempt %d: %d differences, the namespace may still be changing; again", attempt, len(diffs))
	}
	if err := s.Validate(); err != nil {
		t.Errorf("observed state does not validate: %v", err)
	}

	// The oracle agrees; make sure it looked at what this test is about.
	find := func(dst string, table uint32) *state.Route {
		for i := range s.Routes {
			if s.Routes[i].Dst.String() == dst && s.Routes[i].Table == table {
				return &s.Routes[i]
			}
		}
		t.Errorf("route %s table %d not observed", dst, table)
		return &state.Route{}
	}
	if r := find("10.61.0.0/16", state.TableMain); len(r.Nexthops) != 2 || r.Nexthops[0].Weight != 3 || r.Nexthops[1].Dev != "vc" {
		t.Errorf("multipath route: %s", js(r))
	}
	if r := find("0.0.0.0/0", 70000); !r.Owned() {
		t.Errorf("table 70000 default route not owned: %s", js(r))
	}
	if r := find("10.65.0.0/16", 70000); r.NHID != 10 {
		t.Errorf("nhid route: %s", js(r))
	}
	if r := find("2001:db8:100::/48", state.TableMain); r.Src.String() != "2001:db8:1::/64" {
		t.Errorf("source-specific route: %s", js(r))
	}
	if r := find("10.62.0.0/16", state.TableMain); r.Flags&state.NexthopOnlink == 0 {
		t.Errorf("onlink route: %s", js(r))
	}
	if r := find("10.64.0.0/16", state.TableMain); r.Nexthops[0].Gateway.String() != "fe80::1" {
		t.Errorf("RTA_VIA route: %s", js(r))
	}
	if r := find("::/0", 70000); r.MTU != 1280 {
		t.Errorf("mtu route: %s", js(r))
	}
	if n := len(s.Rules); n != 3+13+2+4 {
		t.Errorf("%d rules observed", n)
	}
	if s.Hidden.RulesModified == nil || !*s.Hidden.RulesModified {
		t.Errorf("Hidden.RulesModified = %v, want true", s.Hidden.RulesModified)
	}
	if s.Hidden.MultipathHashSeed == nil || *s.Hidden.MultipathHashSeed != 1234 {
		t.Errorf("Hidden.MultipathHashSeed = %v, want 1234", s.Hidden.MultipathHashSeed)
	}
	checkSysctls(t, ns, s)
}

// checkSysctls compares the observed sysctls with sysctl(8) run inside the
// namespace.
func checkSysctls(t *testing.T, ns string, s *state.State) {
	out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-a").Output()
	if err != nil {
		t.Fatalf("sysctl -a in %s: %v", ns, err)
	}
	all := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok {
			all[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	for k, v := range s.Sysctls {
		if all[k] != v {
			t.Errorf("sysctl %s: observed %q, sysctl(8) says %q", k, v, all[k])
		}
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.src_valid_mark",
		"net.ipv4.conf.br0.ignore_routes_with_linkdown", "net.ipv6.conf.vc.disable_ipv6", "net.ipv6.conf.va.use_oif_addrs_only",
		"net.ipv4.fib_multipath_hash_fields", "net.ipv6.fib_multipath_hash_policy", "net.ipv4.fib_multipath_use_neigh"} {
		if _, ok := s.Sysctls[k]; !ok {
			t.Errorf("sysctl %s not observed", k)
		}
	}
	for k, want := range map[string]string{"net.ipv4.conf.va.rp_filter": "2", "net.ipv4.ip_forward": "1",
		"net.ipv6.conf.all.forwarding": "1", "net.ipv4.fib_multipath_hash_policy": "1", "net.ipv6.conf.vc.disable_ipv6": "1"} {
		if s.Sysctls[k] != want {
			t.Errorf("sysctl %s = %q, want %q (read in the wrong namespace?)", k, s.Sysctls[k], want)
		}
	}
}

func TestObserveFreshNamespace(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "fresh")
	s, err := openT(t, ns).Observe()
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace != ns || len(s.Links) != 1 || s.Links[0].Name != "lo" || !s.Links[0].Loopback {
		t.Errorf("fresh namespace: links %s", js(s.Links))
	}
	if s.Hidden.RulesModified != nil {
		// default-looking rules may still have been added and deleted
		t.Errorf("fresh namespace: RulesModified = %v, want unknown", *s.Hidden.RulesModified)
	}
	if len(s.Rules) != 5 {
		t.Errorf("fresh namespace: %d rules, want 3 IPv4 + 2 IPv6", len(s.Rules))
	}
	ipn(t, ns, "rule", "add", "pref", "1000", "lookup", "main")
	if s, err = openT(t, ns).Observe(); err != nil {
		t.Fatal(err)
	}
	if s.Hidden.RulesModified == nil || !*s.Hidden.RulesModified {
		t.Error("RulesModified is not true after an IPv4 rule was added")
	}
}

// TestObserveMultipathMembers: the members of an IPv6 multipath route
// keep their own src and pref, which a dump shows only for the first.
func TestObserveMultipathMembers(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "members")
	for _, c := range [][]string{
		{"link", "add", "va0", "type", "veth", "peer", "name", "vb0"},
		{"link", "set", "va0", "up"}, {"link", "set", "vb0", "up"},
		{"addr", "add", "2001:db8:1::1/64", "dev", "va0", "nodad"},
		{"addr", "add", "2001:db8:2::1/64", "dev", "vb0", "nodad"},
		{"-6", "route", "add", "2001:db8:9::/48", "via", "2001:db8:1::2", "dev", "va0"},
		{"-6", "route", "append", "2001:db8:9::/48", "via", "2001:db8:1::3", "dev", "va0", "pref", "high"},
		{"-6", "route", "append", "2001:db8:9::/48", "via", "2001:db8:2::3", "dev", "vb0", "src", "2001:db8:2::1"},
	} {
		ipn(t, ns, c...)
	}
	s, err := openT(t, ns).Observe()
	if err != nil {
		t.Fatal(err)
	}
	var r *state.Route
	for i := range s.Routes {
		if s.Routes[i].Dst.String() == "2001:db8:9::/48" {
			r = &s.Routes[i]
		}
	}
	if r == nil || len(r.Nexthops) != 3 {
		t.Fatalf("multipath route: %s", js(r))
	}
	if r.Nexthops[0].Member != nil {
		t.Errorf("first member: %s, want the route's own", js(r.Nexthops[0].Member))
	}
	want := []state.Member{{}, {Pref: 1}, {PrefSrc: netip.MustParseAddr("2001:db8:2::1")}}
	for i := 1; i < 3; i++ {
		if m := r.Nexthops[i].Member; m == nil || *m != want[i] {
			t.Errorf("member %d: %s, want %s", i, js(m), js(want[i]))
		}
	}
}

func TestOpenMissingNamespace(t *testing.T) {
	_, err := Open("tr-k-no-such-namespace")
	if err == nil || !strings.Contains(err.Error(), `"tr-k-no-such-namespace"`) {
		t.Errorf("Open of a missing namespace: %v", err)
	}
}
