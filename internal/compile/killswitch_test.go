package compile

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/facts"
)

const tincConfig = `
vpns:
  - {name: home, type: tinc}
identities:
  - name: vpn
    vpn: home
  - name: outside
    device: eth0
redirect:
  via: vpn
killswitch:
  allow:
    - to: 10.1.0.0/24
`

// tincFacts: what the tinc hook reports (wg0 stands in for tinc0): a node
// at an address and port without a transport, and pushed subnets, one of
// them the LAN (whose connected route another holds).
func tincFacts() *facts.VPN {
	p := netip.MustParsePrefix
	return &facts.VPN{Name: "home", Type: "tinc", Device: "wg0", Addrs: []netip.Prefix{p("10.30.0.2/24")},
		Servers: []facts.Endpoint{{Addr: netip.MustParseAddr("198.51.100.2"), Port: 655}},
		Routes:  []netip.Prefix{p("10.1.0.0/24"), p("192.0.2.0/24")}}
}

// TestTincNodeOnlyOnItsPort: a tinc node's real address is allowed only on
// its port, UDP and TCP (tinc's transports), never all protocols.
func TestTincNodeOnlyOnItsPort(t *testing.T) {
	res := compileWith(t, tincConfig, labClient(), map[string]*facts.VPN{"home": tincFacts()})
	fw := firewallText(res.State.Firewall)
	expectContains(t, fw,
		`meta nfproto ipv4 ip daddr 198.51.100.2 meta l4proto udp th dport 655 accept "VPN server"`,
		`meta nfproto ipv4 ip daddr 198.51.100.2 meta l4proto tcp th dport 655 accept "VPN server"`,
	)
	if strings.Contains(fw, `ip daddr 198.51.100.2 accept`) {
		t.Errorf("the node's address is allowed on every port and protocol:\n%s", fw)
	}
}

// TestPushedRouteHeldByAnother: a pushed subnet whose route another holds
// (the LAN's connected route) is left out with a note; the rest applies.
func TestPushedRouteHeldByAnother(t *testing.T) {
	res := compileWith(t, tincConfig, labClient(), map[string]*facts.VPN{"home": tincFacts()})
	got := strings.Join(rendered(t, res.State), "\n")
	if strings.Contains(got, "route 10.1.0.0/24 dev wg0") {
		t.Errorf("the LAN's subnet was routed into the tunnel:\n%s", got)
	}
	if !strings.Contains(got, "route 192.0.2.0/24 dev wg0") {
		t.Errorf("the other pushed subnet is missing:\n%s", got)
	}
	if notes := strings.Join(res.Notes, "\n"); !strings.Contains(notes, "pushes 10.1.0.0/24, which a route of dev eth0") {
		t.Errorf("no note about the held route: %s", notes)
	}
}

// TestCgroupAroundTunnelWithForwardGuard: a cgroup selector around the
// tunnels with the forward guard on compiles to no `socket cgroupv2` in
// a forward or postrouting chain (the kernel refuses it there: "operation
// not supported"); postrouting allows the selector's mark instead.
func TestCgroupAroundTunnelWithForwardGuard(t *testing.T) {
	cfg := strings.Replace(vpnConfig, "{cgroup: system.slice/backup.service, via: inside}",
		"{cgroup: system.slice/backup.service, via: outside}", 1)
	res := compileWith(t, cfg, labClient(), map[string]*facts.VPN{"work": labVPN()})
	for _, ch := range res.State.Firewall.Chains {
		for _, r := range ch.Rules {
			if r.Cgroup != "" && ch.Hook != "output" && ch.Hook != "prerouting" && ch.Hook != "input" {
				t.Errorf("chain %s (hook %s) has a cgroup match: %s", ch.Name, ch.Hook, r.String())
			}
		}
	}
	fw := firewallText(res.State.Firewall)
	want := `meta nfproto ipv4 oifname "eth0" meta mark & 0x0f000000 == 0x03000000 accept "selected around the tunnel via outside (cgroup system.slice/backup.service)"`
	if !strings.Contains(fw, want) {
		t.Errorf("missing %q in:\n%s", want, fw)
	}
}

// TestForwardGuardOff: with `forward: false` there is no forward chain,
// and postrouting lets forwarded packets (those with an input device)
// pass before judging what the host sends.
func TestForwardGuardOff(t *testing.T) {
	cfg := strings.Replace(vpnConfig, "  dns: [vpn]\n", "  dns: [vpn]\n  forward: false\n", 1)
	res := compileWith(t, cfg, labClient(), map[string]*facts.VPN{"work": labVPN()})
	for _, ch := range res.State.Firewall.Chains {
		if ch.Name == ChainKillForward {
			t.Errorf("a forward chain with forward: false")
		}
		if ch.Name == ChainKillPost && (len(ch.Rules) == 0 || !ch.Rules[0].Forwarded || ch.Rules[0].Verdict != "accept") {
			t.Errorf("postrouting must first accept forwarded packets: %v", ch.Rules)
		}
	}
}
