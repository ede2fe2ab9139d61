package compile

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

func compileWith(t *testing.T, yaml string, obs *state.State, vpns map[string]*facts.VPN) *Result {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: map[string]uint32{"main": 254}})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	res, err := Compile(cfg, obs, vpns)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return res
}

func firewallText(fw *state.Firewall) string {
	if fw == nil {
		return "(none)"
	}
	return strings.Join(fw.Lines(), "\n")
}

// labVPN is what the OpenVPN hook reports in the lab (wg0 stands in for
// the tunnel device the fixture has).
func labVPN() *facts.VPN {
	return &facts.VPN{Name: "work", Type: "openvpn", Device: "wg0",
		Addrs:    []netip.Prefix{netip.MustParsePrefix("10.30.0.2/24")},
		Gateway4: netip.MustParseAddr("10.30.0.1"),
		Servers:  []facts.Endpoint{{Addr: netip.MustParseAddr("198.51.100.2"), Port: 1194, Proto: "udp"}},
		DNS:      []netip.Addr{netip.MustParseAddr("10.30.0.1")},
	}
}

const vpnConfig = `
vpns:
  - {name: work, type: openvpn}
identities:
  - name: inside
    vpn: work
  - name: outside
    device: eth0
redirect:
  via: inside
select:
  - {proto: tcp, dport: 23, via: inside}
  - {proto: tcp, dport: 22, via: outside}
  - {cgroup: system.slice/backup.service, via: inside}
killswitch:
  allow:
    - to: 10.1.0.0/24
  dns: [vpn]
`

func TestVPNUp(t *testing.T) {
	res := compileWith(t, vpnConfig, labClient(), map[string]*facts.VPN{"work": labVPN()})
	got := strings.Join(rendered(t, res.State), "\n")
	expectContains(t, got,
		"route default via 10.30.0.1 dev wg0 table 1000 src 10.30.0.2",
		"route 198.51.100.2/32 via 10.1.0.1 dev eth0 table main",
		"route 0.0.0.0/1 via 10.30.0.1 dev wg0 table main src 10.30.0.2",
		"rule pref 4000 from all ipproto 6 dport 23 lookup 1000",
		"rule pref 4001 from all ipproto 6 dport 22 lookup 1001",
		"rule -6 pref 4001 from all ipproto 6 dport 22 lookup 1001",
		"rule pref 4002 from all fwmark 0x3000000/0xf000000 lookup 1000",
	)
	if strings.Contains(got, "rule -6 pref 4000") {
		t.Errorf("the inside identity has no IPv6 address; no IPv6 selector rule for it:\n%s", got)
	}
	// The forward chain has the rules of the postrouting one but for the
	// loopback and this host's own DHCP and neighbour discovery.
	ksRules := `    meta nfproto ipv4 ip daddr != 10.30.0.1 meta l4proto udp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv4 ip daddr != 10.30.0.1 meta l4proto tcp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv6 meta l4proto udp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv6 meta l4proto tcp th dport 53 counter drop "DNS only to the declared resolvers"
    oifname "wg0" accept "in a tunnel"
    meta nfproto ipv4 ip daddr != 224.0.0.0/4 ip hdrlength != 5 counter drop "IPv4 options (source route) outside a tunnel"
    meta nfproto ipv6 exthdr rt exists counter drop "IPv6 routing header outside a tunnel"
    meta nfproto ipv4 ip daddr 10.1.0.0/24 accept "allowed in clear"
    meta nfproto ipv4 oifname "eth0" meta l4proto tcp th dport 22 accept "selected around the tunnel via outside"
    meta nfproto ipv6 oifname "eth0" meta l4proto tcp th dport 22 accept "selected around the tunnel via outside"
    meta nfproto ipv4 ip daddr 198.51.100.2 meta l4proto udp th dport 1194 accept "VPN server"
`
	wantFW := `table inet tunroute {
  chain select_output {
    type route hook output priority -150; policy accept;
    meta nfproto ipv4 socket cgroupv2 level 2 "system.slice/backup.service" meta mark set meta mark & 0xf0ffffff | 0x03000000 "select: cgroup system.slice/backup.service via inside"
  }
  chain select_nat {
    type nat hook postrouting priority 100; policy accept;
    meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x03000000 masquerade "select: source of re-routed cgroup system.slice/backup.service traffic"
  }
  chain killswitch_postrouting {
    type filter hook postrouting priority 0; policy accept;
    oifname "lo" accept "loopback"
` + ksRules + `    meta nfproto ipv4 ip daddr { 255.255.255.255, 10.1.0.0/24 } meta l4proto udp th sport 68 th dport 67 accept "DHCP"
    meta nfproto ipv6 ip6 daddr { ff02::1:2, fe80::/10, 2001:db8:1::/64 } meta l4proto udp th sport 546 th dport 547 accept "DHCPv6"
    meta nfproto ipv6 ip6 saddr { fe80::/10, :: } ip6 daddr { fe80::/10, ff02::/16, 2001:db8:1::/64 } meta l4proto ipv6-icmp icmpv6 type { 133, 135, 136 } ip6 hoplimit 255 accept "IPv6 neighbour discovery on the link"
    meta nfproto ipv6 ip6 daddr { fe80::/10, ff02::/16, 2001:db8:1::/64 } meta l4proto ipv6-icmp icmpv6 type { 133, 135, 136 } ip6 hoplimit 255 fib saddr . oif type local accept "IPv6 neighbour discovery on the link, from the device's address"
    meta nfproto ipv6 ip6 saddr { fe80::/10, :: } ip6 daddr ff00::/8 meta l4proto ipv6-icmp icmpv6 type { 131, 132, 143 } ip6 hoplimit 1 accept "MLD reports on the link"
    counter drop "kill switch: not in a tunnel, not allowed in clear"
  }
  chain killswitch_forward {
    type filter hook forward priority 0; policy accept;
` + ksRules + `    counter drop "kill switch: not in a tunnel, not allowed in clear"
  }
}`
	if got := firewallText(res.State.Firewall); got != wantFW {
		t.Errorf("firewall:\n%s\nwant:\n%s", got, wantFW)
	}
}

// TestVPNDown: with no facts the VPN identity is down: nothing goes
// through it, the default route is left alone, and the kill switch holds
// with no tunnel to accept (fail closed).
func TestVPNDown(t *testing.T) {
	res := compileWith(t, vpnConfig, labClient(), nil)
	got := strings.Join(rendered(t, res.State), "\n")
	if strings.Contains(got, "wg0") || strings.Contains(got, "0.0.0.0/1") || strings.Contains(got, "lookup 1000") {
		t.Errorf("a down VPN still routes:\n%s", got)
	}
	fw := firewallText(res.State.Firewall)
	if strings.Contains(fw, `oifname "wg0"`) || !strings.Contains(fw, `counter drop "kill switch`) {
		t.Errorf("kill switch with the VPN down:\n%s", fw)
	}
	if len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "vpn work is down") {
		t.Errorf("notes: %v", res.Notes)
	}
	// The identity's table and priority stay allocated so they do not
	// move when the VPN comes back.
	if res.Identities[1].Table != 1001 || res.Identities[1].Priority != 5001 {
		t.Errorf("outside identity renumbered: %+v", res.Identities[1])
	}
}

// TestVPNWentDown: after the down hook the facts keep the server, so the
// kill switch still lets the daemon reconnect, and nothing else.
func TestVPNWentDown(t *testing.T) {
	v := labVPN()
	v.Down = true
	res := compileWith(t, vpnConfig, labClient(), map[string]*facts.VPN{"work": v})
	fw := firewallText(res.State.Firewall)
	if !res.Identities[0].Down || strings.Contains(fw, `oifname "wg0"`) ||
		!strings.Contains(fw, `ip daddr 198.51.100.2 meta l4proto udp th dport 1194 accept "VPN server"`) {
		t.Errorf("down VPN: %+v\n%s", res.Identities[0], fw)
	}
}

func TestVPNDeviceGone(t *testing.T) {
	v := labVPN()
	v.Device = "tun9"
	res := compileWith(t, vpnConfig, labClient(), map[string]*facts.VPN{"work": v})
	if !res.Identities[0].Down || !strings.Contains(strings.Join(res.Notes, "\n"), "tun9, which no longer exists") {
		t.Errorf("stale facts must count as down: %+v %v", res.Identities[0], res.Notes)
	}
}

func TestMarkMaskOverflow(t *testing.T) {
	yaml := "settings: {mark_mask: 0x3}\nidentities:\n  - {name: v, device: wg0, gateway: none}\nselect:\n"
	for i := 0; i < 4; i++ {
		yaml += "  - {cgroup: a.slice, via: v}\n"
	}
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: map[string]uint32{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(cfg, labClient(), nil)
	if err == nil || !strings.Contains(err.Error(), "selector 3 does not fit in mark mask 0x00000003") {
		t.Errorf("got %v", err)
	}
}

// TestVPNServersKnownInAdvance: servers listed under vpns let the daemon
// through the kill switch, and the redirect keep them on the original path,
// before any hook ran.
func TestVPNServersKnownInAdvance(t *testing.T) {
	yaml := strings.Replace(vpnConfig, "  - {name: work, type: openvpn}", "  - {name: work, type: openvpn, servers: [\"198.51.100.2:1194/udp\", \"2001:db8:51::2\"]}", 1)
	res := compileWith(t, yaml, labClient(), nil)
	fw := firewallText(res.State.Firewall)
	expectContains(t, fw,
		`meta nfproto ipv4 ip daddr 198.51.100.2 meta l4proto udp th dport 1194 accept "VPN server"`,
		`meta nfproto ipv6 ip6 daddr 2001:db8:51::2 accept "VPN server"`,
	)
	// Up, the redirect uses the listed servers even if the hook says none.
	v := labVPN()
	v.Servers = nil
	res = compileWith(t, yaml, labClient(), map[string]*facts.VPN{"work": v})
	got := strings.Join(rendered(t, res.State), "\n")
	if !strings.Contains(got, "route 198.51.100.2/32 via 10.1.0.1 dev eth0 table main") ||
		!strings.Contains(got, "route 2001:db8:51::2/128 via 2001:db8:1::1 dev eth0 table main metric 1024") {
		t.Errorf("server routes missing:\n%s", got)
	}
}

// TestRedirectWaitsForServer: a VPN that has not reported its server yet
// (tinc before host-up) leaves the default route alone instead of failing.
func TestRedirectWaitsForServer(t *testing.T) {
	v := labVPN()
	v.Servers = nil
	res := compileWith(t, vpnConfig, labClient(), map[string]*facts.VPN{"work": v})
	got := strings.Join(rendered(t, res.State), "\n")
	if strings.Contains(got, "0.0.0.0/1") || !strings.Contains(strings.Join(res.Notes, "\n"), "has reported no server yet") {
		t.Errorf("redirect without a server:\n%s\n%v", got, res.Notes)
	}
}

func TestPushedRoutes(t *testing.T) {
	v := labVPN()
	v.Routes = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("2001:db8:99::/48")}
	res := compileWith(t, vpnConfig, labClient(), map[string]*facts.VPN{"work": v})
	got := strings.Join(rendered(t, res.State), "\n")
	if !strings.Contains(got, "route 10.99.0.0/16 via 10.30.0.1 dev wg0 table main src 10.30.0.2") {
		t.Errorf("pushed route not installed:\n%s", got)
	}
	if strings.Contains(got, "2001:db8:99::/48") || strings.Contains(got, "route default via 10.30.0.1 dev wg0 table main") {
		t.Errorf("a pushed default route or a route of a family the tunnel lacks was installed:\n%s", got)
	}
	off := strings.Replace(vpnConfig, "{name: work, type: openvpn}", "{name: work, type: openvpn, pushed_routes: false}", 1)
	res = compileWith(t, off, labClient(), map[string]*facts.VPN{"work": v})
	if strings.Contains(strings.Join(rendered(t, res.State), "\n"), "10.99.0.0/16") {
		t.Error("pushed_routes: false still installs pushed routes")
	}
}

// expectContains fails the test for each of wants that text (a rendered
// state or firewall) lacks.
func expectContains(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
}
