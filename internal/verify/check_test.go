package verify

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// vpnFacts is what a hook reports for a VPN on the lab client: the
// tunnel is dev (with the given addresses), the server 198.51.100.2.
func vpnFacts(name, typ, dev string, addrs ...string) *facts.VPN {
	f := &facts.VPN{Name: name, Type: typ, Device: dev, Updated: time.Unix(0, 0),
		Servers: []facts.Endpoint{{Addr: netip.MustParseAddr("198.51.100.2"), Port: 1194, Proto: "udp"}},
		DNS:     []netip.Addr{netip.MustParseAddr("10.30.0.1")}}
	for _, a := range addrs {
		f.Addrs = append(f.Addrs, netip.MustParsePrefix(a))
	}
	return f
}

// withTun adds a tunnel device with its addresses and connected routes.
func withTun(s *state.State, dev string, index int, addrs ...string) *state.State {
	s.Links = append(s.Links, state.Link{Index: index, Name: dev, Kind: "tun", Up: true, Carrier: true, PointToPoint: true, NoARP: true})
	for _, a := range addrs {
		p := netip.MustParsePrefix(a)
		s.Addrs = append(s.Addrs, state.Addr{Dev: dev, Index: index, Prefix: p, Scope: state.ScopeUniverse})
		r := state.Route{Table: 254, Type: state.RouteUnicast, Dst: p.Masked(), Protocol: 2, Scope: state.ScopeLink,
			PrefSrc: p.Addr(), Nexthops: []state.Nexthop{{Dev: dev}}}
		if p.Addr().Is6() {
			r.Metric, r.PrefSrc, r.Scope = 256, netip.Addr{}, 0
		}
		s.Routes = append(s.Routes, r)
	}
	return s
}

func check(t testing.TB, yaml string, obs *state.State, fs map[string]*facts.VPN) *Report {
	t.Helper()
	cfg := parseConfig(t, yaml)
	if obs == nil {
		obs = labClient()
	}
	rep, _, err := Check(Input{Config: cfg, Observed: obs, Facts: fs})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}

func broken(rep *Report) []*Result {
	var out []*Result
	for _, r := range rep.Results {
		if !r.Holds {
			out = append(out, r)
		}
	}
	return out
}

// expectAllHold fails the test, with the violations logged, unless every
// property of the report holds; what says which check it was ("" when
// the test has only one).
func expectAllHold(t *testing.T, rep *Report, what string) {
	t.Helper()
	if b := broken(rep); len(b) > 0 {
		logReport(t, rep)
		if what != "" {
			what += ": "
		}
		t.Errorf("%s%d properties broken", what, len(b))
	}
}

// readExample returns the text of a config of the repository's examples.
func readExample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func logReport(t *testing.T, rep *Report) {
	t.Helper()
	for _, r := range rep.Results {
		for _, v := range r.Violations {
			t.Logf("%s [%s] in %q: %s: %s; %s (%s)", r.Name, r.Source, v.Scenario, v.Example, v.Fate, v.Why, v.Where)
		}
	}
}

// exampleFacts are the hooks' reports for the examples' VPNs.
func exampleFacts(t *testing.T, file string) (*state.State, map[string]*facts.VPN) {
	obs := labClient()
	switch filepath.Base(file) {
	case "openvpn-route-noexec.yaml":
		obs = withTun(obs, "tun0", 4, "10.8.0.2/24")
		f := vpnFacts("work", "openvpn", "tun0", "10.8.0.2/24")
		f.Gateway4 = netip.MustParseAddr("10.8.0.1")
		f.DNS = []netip.Addr{netip.MustParseAddr("10.8.0.1")}
		return obs, map[string]*facts.VPN{"work": f}
	case "tinc-redirect.yaml":
		obs = withTun(obs, "tinc0", 4, "10.20.0.2/16")
		f := vpnFacts("home", "tinc", "tinc0", "10.20.0.2/16")
		f.Servers = []facts.Endpoint{{Addr: netip.MustParseAddr("198.51.100.2"), Port: 655, Proto: "udp"}}
		return obs, map[string]*facts.VPN{"home": f}
	}
	return obs, nil
}

// TestExamplesHold: every shipped example proves all its properties in
// every combination of its VPNs up and down (no false alarm).
func TestExamplesHold(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) < 5 {
		t.Fatalf("examples: %v", files)
	}
	// The lab's own configs: the demo's and the routing domains tests'.
	lab, _ := filepath.Glob("../domaintest/testdata/*.yaml")
	files = append(append(files, "../lab/demo.yaml"), lab...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(f, "domaintest") {
				// The domain tests' templates, filled the way they fill them.
				tmpl, err := template.New(f).Option("missingkey=error").Parse(string(data))
				if err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				if err := tmpl.Execute(&b, map[string]any{"P": "tr-ck-", "WithD2": true, "Local": "10.1.0.2",
					"Remote": "10.1.0.1", "Me": "1", "Site": "a", "Dev": "dtforeign1", "A": "host"}); err != nil {
					t.Fatal(err)
				}
				data = []byte(b.String())
			}
			obs, fs := exampleFacts(t, f)
			if b := filepath.Base(f); b == "move.yaml" || b == "routing-domains.yaml" {
				// The interface these tests move into a domain.
				dev := map[string]string{"move.yaml": "dtmv0", "routing-domains.yaml": "dtvpn0"}[b]
				obs.Links = append(obs.Links, state.Link{Index: 8, Name: dev, Kind: "veth", Up: true, Carrier: true})
				for _, a := range []string{"10.99.0.2/24", "2001:db8:99::2/64"} {
					p := netip.MustParsePrefix(a)
					obs.Addrs = append(obs.Addrs, state.Addr{Dev: dev, Index: 8, Prefix: p})
					obs.Routes = append(obs.Routes, state.Route{Table: 254, Type: state.RouteUnicast, Dst: p.Masked(), Protocol: 2,
						Scope: state.ScopeLink, Nexthops: []state.Nexthop{{Dev: dev}}})
				}
			}
			if filepath.Base(f) == "down.yaml" {
				// The domain test's foreign uplink.
				obs.Links = append(obs.Links, state.Link{Index: 9, Name: "dtforeign0", Kind: "veth", Up: true, Carrier: true})
				obs.Addrs = append(obs.Addrs, state.Addr{Dev: "dtforeign0", Index: 9, Prefix: netip.MustParsePrefix("10.125.0.2/24")})
				obs.Routes = append(obs.Routes, state.Route{Table: 254, Type: state.RouteUnicast, Dst: netip.MustParsePrefix("10.125.0.0/24"), Protocol: 2, Scope: state.ScopeLink, Nexthops: []state.Nexthop{{Dev: "dtforeign0"}}})
			}
			rep := check(t, string(data), obs, fs)
			expectAllHold(t, rep, "")
			t.Logf("%d scenarios, %d classes", len(rep.Scenarios), rep.Cells)
		})
	}
}
