package verify

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
)

// tunnelGroup is a host with two tunnels (wg0, tun1) and an uplink
// (eth0): 203.0.113.0/24 goes through a failover group of the tunnels,
// FALLBACK completes the group and its options.
const tunnelGroup = `
identities:
  - {name: tun-a, device: wg0, gateway: none}
  - {name: tun-b, device: tun1, gateway: none}
  - {name: isp1, device: eth0, address: 10.1.0.2, gateway: 10.1.0.1}
groups:
  - name: tunnels
    failover: [tun-a, tun-bFALLBACK
routes:
  - {to: 203.0.113.0/24, via: tunnels}
killswitch:
  tunnels: [tun-a, tun-b]
`

func groupInput(t *testing.T, fallback string) Input {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.Replace(tunnelGroup, "FALLBACK", fallback, 1)), "test.yaml", config.Options{TableNames: testTables})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return Input{Config: cfg, Observed: withTun(labClient(), "tun1", 4, "10.40.0.2/24")}
}

// proveBuiltins proves the built-in properties in scs.
func proveBuiltins(t *testing.T, scs []Scenario) *Report {
	t.Helper()
	rep, err := Prove(scs, Builtins())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func scenarioNamed(scs []Scenario, name string) *Scenario {
	for i := range scs {
		if scs[i].Name == name {
			return &scs[i]
		}
	}
	return nil
}

// TestTunnelGroupNeverClear: a group of two tunnels without `fallback:
// clear` is checked with each member failing: when tun-a fails the
// traffic goes through tun-b, when both fail it stays on tun-a (the kill
// switch holds), and in no scenario does anything leave in clear.
func TestTunnelGroupNeverClear(t *testing.T) {
	in := groupInput(t, "]")
	scs, notes, err := ScenariosOf(in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range scs {
		names = append(names, sc.Name)
	}
	want := []string{"as configured", "tun-a failing its health check", "tun-b failing its health check",
		"tun-a failing its health check, tun-b failing its health check"}
	if !slices.Equal(names, want) {
		t.Fatalf("scenarios %q, want %q", names, want)
	}
	for name, dev := range map[string]string{"as configured": "wg0", "tun-a failing its health check": "tun1",
		"tun-a failing its health check, tun-b failing its health check": "wg0"} {
		sc := scenarioNamed(scs, name)
		i := slices.IndexFunc(sc.Policy.Intent, func(in Intent) bool { return in.Why == "routes via tunnels" })
		if i < 0 || !slices.Equal(sc.Policy.Intent[i].Devs, []string{dev}) {
			t.Errorf("%s: intent of the group's route %+v, want %s", name, sc.Policy.Intent, dev)
		}
	}
	for _, n := range notes {
		if strings.Contains(n, "clear") {
			t.Errorf("note about clear traffic without fallback: clear: %s", n)
		}
	}
	expectAllHold(t, proveBuiltins(t, scs), "a tunnel group without fallback: clear")
}

// TestFallbackClearIsSaid: with `fallback: clear` the traffic leaves in
// clear through the uplink only when both tunnels fail; check holds and
// says what is allowed in clear, where, and when. If the kill switch let
// more out in that scenario than the group's routes (an accept rule
// widened to every destination), check finds the leak there.
func TestFallbackClearIsSaid(t *testing.T) {
	in := groupInput(t, ", isp1]\n    fallback: clear")
	scs, notes, err := ScenariosOf(in)
	if err != nil {
		t.Fatal(err)
	}
	const both = "tun-a failing its health check, tun-b failing its health check"
	wantNote := "group tunnels fell back to clear via isp1 (fallback: clear): allowed in clear out of eth0 to 203.0.113.0/24, when: " + both
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, wantNote) }) {
		t.Errorf("notes %q lack %q", notes, wantNote)
	}
	for _, n := range notes {
		if strings.Contains(n, "fell back") && strings.Contains(n, "when: as configured") {
			t.Errorf("clear allowed with every tunnel healthy: %s", n)
		}
	}
	expectAllHold(t, proveBuiltins(t, scs), "fallback: clear, as the config allows it")

	// The attacker's kill switch: the fallback's accept rule lets every
	// destination out of eth0.
	sc := scenarioNamed(scs, both)
	if sc == nil {
		t.Fatalf("no scenario %q", both)
	}
	widened := 0
	fw := *sc.State.Firewall
	fw.Chains = slices.Clone(fw.Chains)
	for ci := range fw.Chains {
		fw.Chains[ci].Rules = slices.Clone(fw.Chains[ci].Rules)
		for ri := range fw.Chains[ci].Rules {
			if r := &fw.Chains[ci].Rules[ri]; strings.HasPrefix(r.Comment, "group tunnels fell back to clear") {
				r.Daddr = nil
				widened++
			}
		}
	}
	if widened == 0 {
		t.Fatalf("no fallback rule in the kill switch of %q", both)
	}
	st := *sc.State
	st.Firewall = &fw
	sc.State = &st
	rep := proveBuiltins(t, scs)
	var found bool
	for _, r := range broken(rep) {
		for _, v := range r.Violations {
			if v.Scenario == both && strings.HasPrefix(r.Name, "nothing leaves in clear") {
				found = true
				t.Logf("found: %s in %q: %s: %s", r.Name, v.Scenario, v.Example, v.Why)
			}
		}
	}
	if !found {
		logReport(t, rep)
		t.Errorf("a kill switch that lets everything out of eth0 on fallback is not found")
	}
}

// TestDomainGroupHolds: a failover group of two tunnels inside a routing
// domain is proved in the domain, with each member failing in turn
// (nothing in clear whichever is active), as at the top.
func TestDomainGroupHolds(t *testing.T) {
	yaml := `
domains:
  - name: dom
    interfaces: [wg0, tun1]
    identities:
      - {name: tun-a, device: wg0, gateway: none}
      - {name: tun-b, device: tun1, gateway: none}
    groups:
      - name: tunnels
        failover: [tun-a, tun-b]
    routes:
      - {to: 203.0.113.0/24, via: tunnels}
    killswitch:
      tunnels: [tun-a, tun-b]
`
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	obs := withTun(labClient(), "tun1", 4, "10.40.0.2/24")
	res, err := ProveDomainBuiltins(cfg, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 {
		t.Fatal("nothing proved in the domain")
	}
	for _, r := range res {
		if !r.Holds {
			t.Errorf("%s: %s in %q: %s", r.Name, r.Violations[0].Example, r.Violations[0].Scenario, r.Violations[0].Why)
		}
	}
	// The scenario where tun-a fails routes through tun-b: the verdict
	// reaches the domain by its DOMAIN/IDENTITY name.
	for h, dev := range map[string]string{"": "wg0", "dom/tun-a": "tun1"} {
		health := compile.Health{}
		if h != "" {
			health[h] = false
		}
		_, states, _, err := domainStates(cfg, obs, nil, health)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range states["dom"].Routes {
			if r.Dst == netip.MustParsePrefix("203.0.113.0/24") {
				found = true
				if r.Nexthops[0].Dev != dev {
					t.Errorf("%q failing: the domain's route leaves by %s, want %s", h, r.Nexthops[0].Dev, dev)
				}
			}
		}
		if !found {
			t.Errorf("%q failing: no route to 203.0.113.0/24 in the domain", h)
		}
	}
}
