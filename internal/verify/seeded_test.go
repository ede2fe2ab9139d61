package verify

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// Seeded bugs: each config below has one mistake a user could make, and
// check must find it with a counterexample that shows it.

const openvpnBase = `
vpns:
  - {name: work, type: openvpn, servers: ["198.51.100.2:1194/udp"]}
identities:
  - {name: inside, vpn: work}
  - {name: outside, device: eth0}
`

func workFacts() (*state.State, map[string]*facts.VPN) {
	obs := withTun(labClient(), "tun0", 4, "10.8.0.2/24")
	f := vpnFacts("work", "openvpn", "tun0", "10.8.0.2/24")
	f.Gateway4 = netip.MustParseAddr("10.8.0.1")
	return obs, map[string]*facts.VPN{"work": f}
}

// checkWork checks openvpnBase and then cfg with the work VPN's facts
// on the lab client.
func checkWork(t *testing.T, cfg string) *Report {
	t.Helper()
	obs, fs := workFacts()
	return check(t, openvpnBase+cfg, obs, fs)
}

// violation returns the counterexample of the named property in the
// named scenario, failing the test when there is none.
func violation(t *testing.T, rep *Report, prop, scenario string) *Violation {
	t.Helper()
	for _, r := range rep.Results {
		if r.Name != prop && !strings.HasPrefix(r.Source, prop) {
			continue
		}
		for _, v := range r.Violations {
			if scenario == "" || v.Scenario == scenario {
				t.Logf("found: %s in %q: %s: %s; %s", r.Name, v.Scenario, v.Example, v.Fate, v.Why)
				return v
			}
		}
	}
	logReport(t, rep)
	t.Fatalf("no violation of %q in %q", prop, scenario)
	return nil
}

const intentProp = "traffic goes where the config sends it"
const fallbackProp = "what goes through a tunnel never falls back to clear when tunnels go down"

// A hostile DHCP server pushes routes more specific than the redirect's
// /1 routes (TunnelVision, CVE-2024-3661), and there is no kill switch.
func TestSeededTunnelVisionWithoutKillSwitch(t *testing.T) {
	cfg := `
identities:
  - {name: vpn, device: wg0, gateway: none}
  - {name: outside, device: eth0}
redirect: {via: vpn, servers: [198.51.100.2]}
`
	obs := labClient()
	for _, r := range []struct{ dst, gw string }{{"0.0.0.0/2", "10.1.0.1"}, {"203.0.113.0/24", "10.1.0.1"}, {"::/2", "2001:db8:1::1"}} {
		obs.Routes = append(obs.Routes, state.Route{Table: 254, Type: state.RouteUnicast, Dst: netip.MustParsePrefix(r.dst),
			Protocol: 16, Nexthops: []state.Nexthop{{Gateway: netip.MustParseAddr(r.gw), Dev: "eth0"}}})
	}
	rep := check(t, cfg, obs, nil)
	v := violation(t, rep, intentProp, "")
	if f := v.FateOf(); !f.Clear() || f.Dev != "eth0" {
		t.Errorf("fate %v, want eth0 in clear", f)
	}
	if !netip.MustParsePrefix("0.0.0.0/2").Contains(v.Packet.Dst) && !netip.MustParsePrefix("203.0.113.0/24").Contains(v.Packet.Dst) &&
		!netip.MustParsePrefix("::/2").Contains(v.Packet.Dst) {
		t.Errorf("counterexample %s is not under a hostile route", v.Packet.Dst)
	}
	// The same with the kill switch: the routes still point at eth0, but
	// nothing leaves in clear.
	rep = check(t, cfg+"killswitch: {}\n", obs, nil)
	expectAllHold(t, rep, "with the kill switch")
}

// An allow meant for the LAN that lets everything out in clear: harmless
// while the VPN is up, a leak as soon as it goes down.
func TestSeededAllowTooWide(t *testing.T) {
	rep := checkWork(t, `
redirect: {via: inside}
killswitch:
  allow: [{to: 0.0.0.0/0}]
`)
	v := violation(t, rep, fallbackProp, "work down")
	if f := v.FateOf(); !f.Clear() || f.Dev != "eth0" || v.Packet.Forwarded() {
		t.Errorf("fate %v of %s, want eth0 in clear", f, v.Packet.String())
	}
	for _, r := range rep.Results {
		for _, v := range r.Violations {
			if v.Scenario == "work up" {
				t.Errorf("with the VPN up nothing leaks, but: %s: %s", r.Name, v.Example)
			}
		}
	}
	// The right allow (the LAN) holds in both states.
	rep = checkWork(t, "redirect: {via: inside}\nkillswitch:\n  allow: [{to: 10.1.0.0/24}]\n")
	expectAllHold(t, rep, "LAN allow")
}

// A selector that sends one user around the tunnel, against the user's
// own assertion that this user only ever uses the tunnel.
func TestSeededUIDAroundTheTunnel(t *testing.T) {
	rep := checkWork(t, `
redirect: {via: inside}
select:
  - {uid: 1001, via: outside}
killswitch: {}
assert:
  - {uid: 1001, only_via: [inside]}
  - {uid: 1002, only_via: [inside]}
`)
	v := violation(t, rep, "uid 1001 only via inside", "work up")
	if v.Packet.UID != 1001 || v.FateOf().Dev != "eth0" {
		t.Errorf("counterexample %s: %s, want uid 1001 by eth0", v.Packet.String(), v.Fate)
	}
	for _, r := range rep.Results {
		if r.Name == "uid 1002 only via inside" && !r.Holds {
			t.Errorf("uid 1002 is not selected, yet: %s", r.Violations[0].Example)
		}
	}
}

// A route through the VPN without a kill switch: when the VPN goes down
// the route goes with it, and the office network falls back to the
// default route, in clear.
func TestSeededFallbackToClear(t *testing.T) {
	cfg := `
routes:
  - {to: 10.20.0.0/16, via: inside}
assert:
  - {to: 10.20.0.0/16, only_via: [inside]}
`
	rep := checkWork(t, cfg)
	v := violation(t, rep, "to 10.20.0.0/16 only via inside", "work down")
	if !netip.MustParsePrefix("10.20.0.0/16").Contains(v.Packet.Dst) || v.FateOf().Dev != "eth0" {
		t.Errorf("counterexample %s: %s", v.Packet.String(), v.Fate)
	}
	if v.Packet.Src.IsValid() {
		t.Errorf("counterexample %s: an unbound socket's packet leaks too, and is simpler", v.Packet.String())
	}
	// With the kill switch the assertion holds in both states.
	rep = checkWork(t, cfg+"killswitch: {}\n")
	expectAllHold(t, rep, "with the kill switch")
}

// Two routing domains joined to the host by pipes; the host routes
// between them. Without an allow list on the private domain's pipe, the
// hostile domain reaches it.
func TestSeededPipeWithoutAllow(t *testing.T) {
	cfg := `
domains:
  - name: private
  - name: hostile
pipes:
  - name: priv0
    a: {domain: host, address: 10.250.2.1/30}
    b: {domain: private, address: 10.250.2.2/30, routes: [10.250.0.0/16]}
  - name: host0
    a: {domain: host, address: 10.250.3.1/30}
    b: {domain: hostile, address: 10.250.3.2/30, routes: [0.0.0.0/0]}
%s
assert:
  - {from_domain: hostile, to_domain: private, never: true}
`
	obs := labClient()
	obs.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1"}
	rep := check(t, fmt.Sprintf(cfg, ""), obs, nil)
	v := violation(t, rep, "from domain hostile to domain private never", "")
	if v.Packet.Dst != netip.MustParseAddr("10.250.2.2") {
		t.Errorf("counterexample to %s, want private's 10.250.2.2", v.Packet.Dst)
	}
	t.Logf("path: %s", v.Why)
	// The allow list on the hostile pipe closes it.
	obs = labClient()
	obs.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1"}
	allowed := strings.Replace(cfg, "routes: [0.0.0.0/0]}", "routes: [0.0.0.0/0]}\n    allow: [{from: hostile, to: 192.0.2.10, proto: tcp, port: 443}]", 1)
	rep = check(t, fmt.Sprintf(allowed, ""), obs, nil)
	for _, r := range rep.Results {
		if strings.Contains(r.Name, "from domain") && !r.Holds {
			t.Errorf("with the allow list: %s: %s", r.Violations[0].Example, r.Violations[0].Why)
		}
	}
}
