package compile

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// twoISPs is the lab client with a second uplink, eth1 (IPv4 only),
// whose default route sits in the main table at a higher metric.
func twoISPs() *state.State {
	s := labClient()
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	s.Links = append(s.Links, state.Link{Index: 4, Name: "eth1", Kind: "veth", Up: true, Carrier: true})
	s.Addrs = append(s.Addrs, state.Addr{Dev: "eth1", Index: 4, Prefix: p("10.2.0.2/24"), Scope: state.ScopeUniverse})
	s.Routes = append(s.Routes,
		state.Route{Table: 254, Type: state.RouteUnicast, Dst: p("0.0.0.0/0"), Protocol: 4, Metric: 200,
			Nexthops: []state.Nexthop{{Gateway: a("10.2.0.1"), Dev: "eth1"}}},
		state.Route{Table: 254, Type: state.RouteUnicast, Dst: p("10.2.0.0/24"), Protocol: 2, Scope: state.ScopeLink,
			PrefSrc: a("10.2.0.2"), Nexthops: []state.Nexthop{{Dev: "eth1"}}})
	return s
}

const ispConfig = `
identities:
  - name: isp1
    device: eth0
    address: 10.1.0.2
    health:
      targets: [icmp 203.0.113.1, tcp 198.51.100.1:443]
  - name: isp2
    device: eth1
    health:
      targets: [dns 192.0.2.53]
groups:
  - name: uplinks
    failover: [isp1, isp2]
  - name: shared
    balance: {isp1: 3, isp2: 1}
routes:
  - to: 198.51.100.0/24
    via: uplinks
  - to: 192.0.2.0/24
    via: shared
select:
  - uid: 1000
    via: shared
killswitch:
  tunnels: []
`

func compileHealth(t *testing.T, yaml string, obs *state.State, vpns map[string]*facts.VPN, h Health) *Result {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: map[string]uint32{"main": 254}})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	res, err := CompileHealth(cfg, obs, vpns, h)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return res
}

// only keeps the lines that hold one of the words.
// expectLines fails the test unless got is want, line for line; what
// says what the lines are.
func expectLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot  %s\nwant %s", what, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func only(lines []string, words ...string) []string {
	var out []string
	for _, l := range lines {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func TestFailoverAndBalanceFollowHealth(t *testing.T) {
	cases := []struct {
		health Health
		want   []string
		groups []GroupState
	}{{
		health: nil, // nothing judged yet: every member counts as healthy
		want: []string{
			"route default nexthop via 10.1.0.1 dev eth0 weight 3 nexthop via 10.2.0.1 dev eth1 table 1002",
			"route 198.51.100.0/24 via 10.1.0.1 dev eth0 table main src 10.1.0.2",
			"route 192.0.2.0/24 nexthop via 10.1.0.1 dev eth0 weight 3 nexthop via 10.2.0.1 dev eth1 table main",
			"rule pref 4000 from all uidrange 1000-1000 lookup 1002",
		},
		groups: []GroupState{{Name: "uplinks", Kind: "failover", Active: []string{"isp1"}, Why: "isp1 is the first member and healthy"},
			{Name: "shared", Kind: "balance", Active: []string{"isp1", "isp2"}, Why: "healthy members share the load by weight"}},
	}, {
		health: Health{"isp1": false, "isp2": true},
		want: []string{
			"route default via 10.2.0.1 dev eth1 table 1002",
			"route 198.51.100.0/24 via 10.2.0.1 dev eth1 table main src 10.2.0.2",
			"route 192.0.2.0/24 via 10.2.0.1 dev eth1 table main",
			"rule pref 4000 from all uidrange 1000-1000 lookup 1002",
		},
		groups: []GroupState{{Name: "uplinks", Kind: "failover", Active: []string{"isp2"}, Why: "isp1 fails its health check"},
			{Name: "shared", Kind: "balance", Active: []string{"isp2"}, Why: "healthy members share the load by weight"}},
	}, {
		// Nothing healthy: stay where the config prefers; never go around.
		health: Health{"isp1": false, "isp2": false},
		want: []string{
			"route default nexthop via 10.1.0.1 dev eth0 weight 3 nexthop via 10.2.0.1 dev eth1 table 1002",
			"route 198.51.100.0/24 via 10.1.0.1 dev eth0 table main src 10.1.0.2",
			"route 192.0.2.0/24 nexthop via 10.1.0.1 dev eth0 weight 3 nexthop via 10.2.0.1 dev eth1 table main",
			"rule pref 4000 from all uidrange 1000-1000 lookup 1002",
		},
		groups: []GroupState{{Name: "uplinks", Kind: "failover", Active: []string{"isp1"},
			Why: "no member is healthy; staying on isp1 (isp1 fails its health check; isp2 fails its health check)"},
			{Name: "shared", Kind: "balance", Active: []string{"isp1", "isp2"}, Why: "no member is healthy; the load stays shared over those that are up"}},
	}}
	for _, c := range cases {
		res := compileHealth(t, ispConfig, twoISPs(), nil, c.health)
		got := only(rendered(t, res.State), "table 1002", "table main", "uidrange")
		expectLines(t, fmt.Sprintf("health %v", c.health), got, c.want...)
		if !reflect.DeepEqual(res.Groups, c.groups) {
			t.Errorf("health %v: groups\ngot  %+v\nwant %+v", c.health, res.Groups, c.groups)
		}
	}
}

// TestMultipathRouteObject pins the route a balance group compiles to, as
// the kernel reports it: one route, a nexthop per member, the weights.
func TestMultipathRouteObject(t *testing.T) {
	res := compileHealth(t, ispConfig, twoISPs(), nil, nil)
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	want := state.Route{Table: 254, Type: state.RouteUnicast, Dst: p("192.0.2.0/24"), Protocol: state.Proto,
		Nexthops: []state.Nexthop{{Gateway: a("10.1.0.1"), Dev: "eth0", Weight: 3}, {Gateway: a("10.2.0.1"), Dev: "eth1", Weight: 1}}}
	for _, r := range res.State.Routes {
		if r.Dst == want.Dst {
			if !reflect.DeepEqual(r, want) {
				t.Errorf("got  %+v\nwant %+v", r, want)
			}
			return
		}
	}
	t.Fatal("no route to 192.0.2.0/24")
}

// TestProbesLeaveThroughTheirIdentity: each identity with a health check
// gets its mark, a rule sending that mark to its table before any other
// rule of tunroute's, and kill switch rules that accept exactly its probes.
func TestProbesLeaveThroughTheirIdentity(t *testing.T) {
	res := compileHealth(t, ispConfig, twoISPs(), nil, Health{"isp1": false})
	a := netip.MustParseAddr
	cfg, _ := config.Parse([]byte(ispConfig), "test.yaml", config.Options{TableNames: map[string]uint32{"main": 254}})
	want := []Probe{
		{Identity: "isp1", Netns: "tr-client", Device: "eth0", Source4: a("10.1.0.2"), Mark: 0x0f000000, Mask: 0x0f000000, Table: 1000, Health: *cfg.Identity("isp1").Health},
		{Identity: "isp2", Netns: "tr-client", Device: "eth1", Source4: a("10.2.0.2"), Mark: 0x0e000000, Mask: 0x0f000000, Table: 1001, Health: *cfg.Identity("isp2").Health},
	}
	if len(res.Probes) != 2 {
		t.Fatalf("probes: %+v", res.Probes)
	}
	for i := range want {
		got := res.Probes[i]
		if !reflect.DeepEqual(got.Health.Targets, want[i].Health.Targets) || got.Health.Interval != want[i].Health.Interval {
			t.Errorf("probe %d health %+v", i, got.Health)
		}
		got.Health, want[i].Health = config.Health{}, config.Health{}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("probe %d:\ngot  %+v\nwant %+v", i, got, want[i])
		}
	}
	if got := res.Probes[0].Health.Targets; len(got) != 2 || got[0].String() != "icmp 203.0.113.1" || got[1].String() != "tcp 198.51.100.1:443" {
		t.Errorf("isp1 targets = %v", got)
	}
	expectLines(t, "probe rules", only(rendered(t, res.State), "fwmark"),
		"rule pref 400 from all fwmark 0xf000000/0xf000000 lookup 1000",
		"rule pref 401 from all fwmark 0xe000000/0xf000000 lookup 1001")
	expectLines(t, "kill switch probe rules", only(strings.Split(firewallText(res.State.Firewall), "\n"), "health probe"),
		`    meta nfproto ipv4 oifname "eth0" ip saddr 10.1.0.2 ip daddr 203.0.113.1 meta l4proto icmp meta mark & 0x0f000000 == 0x0f000000 accept "health probe of isp1: icmp 203.0.113.1"`,
		`    meta nfproto ipv4 oifname "eth0" ip saddr 10.1.0.2 ip daddr 198.51.100.1 meta l4proto tcp th dport 443 meta mark & 0x0f000000 == 0x0f000000 accept "health probe of isp1: tcp 198.51.100.1:443"`,
		`    meta nfproto ipv4 oifname "eth1" ip saddr 10.2.0.2 ip daddr 192.0.2.53 meta l4proto udp th dport 53 meta mark & 0x0f000000 == 0x0e000000 accept "health probe of isp2: dns 192.0.2.53:53"`)
	// The probes are allowed only in the postrouting chain (the forward
	// chain never sees a host's own socket).
	if n := strings.Count(firewallText(res.State.Firewall), "health probe"); n != 3 {
		t.Errorf("%d probe rules in the firewall, want 3", n)
	}
}

const tunnelsOverISPs = `
vpns:
  - {name: work, type: openvpn}
identities:
  - name: vpn
    vpn: work
    health:
      targets: icmp 10.30.0.1
  - name: isp1
    device: eth0
  - name: isp2
    device: eth1
groups:
  - name: out
    failover: [vpn, isp2]
    fallback: clear
routes:
  - to: 192.0.2.0/24
    via: out
killswitch: {}
`

// TestFallbackClear: a failover from a tunnel to a clear uplink, allowed
// by fallback: clear, lets exactly the group's destinations out of that
// uplink; while the tunnel is healthy nothing extra is allowed in clear.
func TestFallbackClear(t *testing.T) {
	vpns := map[string]*facts.VPN{"work": labVPN()}
	healthy := compileHealth(t, tunnelsOverISPs, twoISPs(), vpns, Health{"vpn": true})
	expectLines(t, "healthy tunnel", only(rendered(t, healthy.State), "192.0.2.0/24"),
		"route 192.0.2.0/24 via 10.30.0.1 dev wg0 table main src 10.30.0.2")
	fw := firewallText(healthy.State.Firewall)
	if strings.Contains(fw, "fell back") || !strings.Contains(fw, `oifname "wg0" accept "in a tunnel"`) {
		t.Errorf("healthy tunnel: firewall\n%s", fw)
	}
	dead := compileHealth(t, tunnelsOverISPs, twoISPs(), vpns, Health{"vpn": false})
	expectLines(t, "dead tunnel", only(rendered(t, dead.State), "192.0.2.0/24"),
		"route 192.0.2.0/24 via 10.2.0.1 dev eth1 table main src 10.2.0.2")
	// Once in postrouting, once in forward.
	fellBack := `    meta nfproto ipv4 oifname "eth1" ip daddr 192.0.2.0/24 accept "group out fell back to clear via isp2"`
	expectLines(t, "dead tunnel: clear rules", only(strings.Split(firewallText(dead.State.Firewall), "\n"), "fell back"),
		fellBack, fellBack)
	if !dead.Groups[0].Clear || dead.Groups[0].Active[0] != "isp2" {
		t.Errorf("group state %+v", dead.Groups[0])
	}
	// eth1 is never a tunnel device for the kill switch.
	if strings.Contains(firewallText(dead.State.Firewall), `"eth1" } accept "in a tunnel"`) || strings.Contains(firewallText(dead.State.Firewall), `oifname "eth1" accept "in a tunnel"`) {
		t.Errorf("the clear member counts as a tunnel")
	}
}

// TestFailoverBetweenTunnelsKeepsBothServers: a redirect through a
// failover of two tunnels keeps each tunnel's server on the uplink, so
// the standby is connected when the active one fails.
func TestFailoverBetweenTunnelsKeepsBothServers(t *testing.T) {
	yaml := `
vpns:
  - {name: work, type: openvpn, servers: [198.51.100.2]}
  - {name: home, type: openvpn, servers: [198.51.100.3]}
identities:
  - {name: vpn1, vpn: work}
  - {name: vpn2, vpn: home}
groups:
  - {name: tunnels, failover: [vpn1, vpn2]}
redirect:
  via: tunnels
`
	obs := twoISPs()
	obs.Links = append(obs.Links, state.Link{Index: 5, Name: "tun1", Kind: "tun", Up: true, Carrier: true, PointToPoint: true})
	obs.Addrs = append(obs.Addrs, state.Addr{Dev: "tun1", Index: 5, Prefix: netip.MustParsePrefix("10.31.0.2/24"), Scope: state.ScopeUniverse})
	home := &facts.VPN{Name: "home", Type: "openvpn", Device: "tun1", Addrs: []netip.Prefix{netip.MustParsePrefix("10.31.0.2/24")},
		Gateway4: netip.MustParseAddr("10.31.0.1")}
	vpns := map[string]*facts.VPN{"work": labVPN(), "home": home}
	res := compileHealth(t, yaml, obs, vpns, Health{"vpn1": false})
	expectLines(t, "main table", only(rendered(t, res.State), "table main"),
		"route 198.51.100.2/32 via 10.1.0.1 dev eth0 table main",
		"route 198.51.100.3/32 via 10.1.0.1 dev eth0 table main",
		"route 0.0.0.0/1 via 10.31.0.1 dev tun1 table main src 10.31.0.2",
		"route 128.0.0.0/1 via 10.31.0.1 dev tun1 table main src 10.31.0.2")
}

// TestTwoTunnelsOverTwoISPs is the README's example: each tunnel's
// server pinned to one ISP by a route entry (the redirect leaves it so),
// the redirect through a failover of the tunnels.
func TestTwoTunnelsOverTwoISPs(t *testing.T) {
	yaml := `
vpns:
  - {name: work-a, type: openvpn, servers: [198.51.100.2]}
  - {name: work-b, type: openvpn, servers: [198.51.100.3]}
identities:
  - name: isp1
    device: eth0
    address: 10.1.0.2
  - name: isp2
    device: eth1
  - name: vpn-a
    vpn: work-a
    health: {targets: [icmp 10.30.0.1]}
  - name: vpn-b
    vpn: work-b
    health: {targets: [icmp 10.31.0.1]}
groups:
  - name: tunnels
    failover: [vpn-a, vpn-b]
routes:
  - to: 198.51.100.2
    via: isp1
  - to: 198.51.100.3
    via: isp2
redirect:
  via: tunnels
killswitch: {}
`
	obs := twoISPs()
	obs.Links = append(obs.Links, state.Link{Index: 5, Name: "tun1", Kind: "tun", Up: true, Carrier: true, PointToPoint: true})
	obs.Addrs = append(obs.Addrs, state.Addr{Dev: "tun1", Index: 5, Prefix: netip.MustParsePrefix("10.31.0.2/24"), Scope: state.ScopeUniverse})
	a := labVPN()
	a.Name = "work-a"
	b := &facts.VPN{Name: "work-b", Type: "openvpn", Device: "tun1", Addrs: []netip.Prefix{netip.MustParsePrefix("10.31.0.2/24")},
		Gateway4: netip.MustParseAddr("10.31.0.1")}
	vpns := map[string]*facts.VPN{"work-a": a, "work-b": b}
	for _, c := range []struct {
		health Health
		dev    string
	}{{nil, "via 10.30.0.1 dev wg0"}, {Health{"vpn-a": false}, "via 10.31.0.1 dev tun1"}} {
		res := compileHealth(t, yaml, obs, vpns, c.health)
		got := only(rendered(t, res.State), "table main")
		want := []string{
			"route 198.51.100.2/32 via 10.1.0.1 dev eth0 table main src 10.1.0.2",
			"route 198.51.100.3/32 via 10.2.0.1 dev eth1 table main src 10.2.0.2",
		}
		for _, half := range []string{"0.0.0.0/1", "128.0.0.0/1"} {
			src := "10.30.0.2"
			if c.dev == "via 10.31.0.1 dev tun1" {
				src = "10.31.0.2"
			}
			want = append(want, "route "+half+" "+c.dev+" table main src "+src)
		}
		expectLines(t, fmt.Sprintf("health %v", c.health), got, want...)
		fw := firewallText(res.State.Firewall)
		if !strings.Contains(fw, `oifname { "tun1", "wg0" } accept "in a tunnel"`) {
			t.Errorf("both tunnels must count as tunnels:\n%s", fw)
		}
	}
}

// TestLinkDownIsAPassiveSignal: a member whose device lost its carrier
// is passed over at once, healthy verdict or not.
func TestLinkDownIsAPassiveSignal(t *testing.T) {
	obs := twoISPs()
	for i := range obs.Links {
		if obs.Links[i].Name == "eth0" {
			obs.Links[i].Carrier = false
		}
	}
	res := compileHealth(t, ispConfig, obs, nil, nil)
	expectLines(t, "main table", only(rendered(t, res.State), "table main"),
		"route 198.51.100.0/24 via 10.2.0.1 dev eth1 table main src 10.2.0.2",
		"route 192.0.2.0/24 via 10.2.0.1 dev eth1 table main")
	if res.Groups[0].Why != "isp1: eth0 has no carrier" {
		t.Errorf("why: %q", res.Groups[0].Why)
	}
}
