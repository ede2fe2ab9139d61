package config

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const twoISPs = `
identities:
  - name: isp1
    device: eth0
    health:
      targets: [icmp 203.0.113.1, tcp 198.51.100.1:443, dns 192.0.2.53]
      interval: 500ms
      timeout: 400ms
      down: 2
      up: 4
      min_targets: 2
  - name: isp2
    device: eth1
    health:
      targets: icmp 203.0.113.2
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
    via: uplinks
`

func TestParseHealthAndGroups(t *testing.T) {
	cfg, err := Parse([]byte(twoISPs), "isps.yaml", Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Identity("isp1").Health
	want := &Health{Targets: []HealthTarget{
		{Kind: ProbeICMP, Addr: netip.MustParseAddr("203.0.113.1")},
		{Kind: ProbeTCP, Addr: netip.MustParseAddr("198.51.100.1"), Port: 443},
		{Kind: ProbeDNS, Addr: netip.MustParseAddr("192.0.2.53"), Port: 53},
	}, Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, Down: 2, Up: 4, MinTargets: 2}
	h.positions = nil
	if !reflect.DeepEqual(h, want) {
		t.Errorf("health = %+v, want %+v", h, want)
	}
	h2 := cfg.Identity("isp2").Health
	if h2.Interval != time.Second || h2.Timeout != time.Second || h2.Down != 3 || h2.Up != 5 || h2.MinTargets != 1 || len(h2.Targets) != 1 {
		t.Errorf("defaults not applied: %+v", h2)
	}
	if g := cfg.Group("uplinks"); g == nil || !reflect.DeepEqual(g.Failover, []string{"isp1", "isp2"}) || g.Balance != nil {
		t.Errorf("failover group = %+v", g)
	}
	if g := cfg.Group("shared"); g == nil || !reflect.DeepEqual(g.Balance, []Weighted{{"isp1", 3}, {"isp2", 1}}) {
		t.Errorf("balance group = %+v", g)
	}
	if cfg.Routes[0].Via != "uplinks" || cfg.Routes[1].Via != "shared" || cfg.Select[0].Via != "uplinks" {
		t.Errorf("group references not kept: %q %q %q", cfg.Routes[0].Via, cfg.Routes[1].Via, cfg.Select[0].Via)
	}
}

// TestFlowStyleTargets: the issue's own spelling, a flow mapping.
func TestFlowStyleTargets(t *testing.T) {
	cfg, err := Parse([]byte("identities:\n  - name: isp1\n    device: eth0\n    health: {targets: [icmp 203.0.113.1, tcp 198.51.100.1:443, dns 10.8.0.1], interval: 1s, timeout: 1s, down: 3, up: 5, min_targets: 1}\n"),
		"x.yaml", Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Identity("isp1").Health.Targets
	if len(got) != 3 || got[1].String() != "tcp 198.51.100.1:443" || got[2].String() != "dns 10.8.0.1:53" {
		t.Errorf("targets %v", got)
	}
}

func TestParseTargets(t *testing.T) {
	for in, want := range map[string]HealthTarget{
		"tcp [2001:db8::1]:443": {Kind: ProbeTCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443},
		"dns 10.8.0.1:5353":     {Kind: ProbeDNS, Addr: netip.MustParseAddr("10.8.0.1"), Port: 5353},
		"icmp 2001:db8::2":      {Kind: ProbeICMP, Addr: netip.MustParseAddr("2001:db8::2")},
	} {
		got, err := parseHealthTarget(in)
		if err != nil || got != want {
			t.Errorf("%q: got %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestHealthAndGroupErrors(t *testing.T) {
	base := "vpns:\n  - name: v\n    type: openvpn\n" + "identities:\n  - name: isp1\n    device: eth0\n  - name: isp2\n    device: eth1\n  - name: wg\n    vpn: v\n"
	vpns := ""
	for _, c := range []struct{ body, want string }{
		{"identities:\n  - name: isp1\n    device: eth0\n    health:\n      targets: [ping 1.2.3.4]\n",
			`x.yaml:5:17: identities[0].health.targets[0]: unknown probe kind "ping"`},
		{"identities:\n  - name: isp1\n    device: eth0\n    health:\n      targets: [tcp 198.51.100.1]\n",
			`x.yaml:5:17: identities[0].health.targets[0]: "198.51.100.1": a tcp target needs a port`},
		{"identities:\n  - name: isp1\n    device: eth0\n    health:\n      targets: icmp 203.0.113.1\n      interval: 1s\n      timeout: 2s\n",
			`x.yaml:7:16: identities[0].health.timeout: timeout 2s is longer than interval 1s`},
		{"identities:\n  - name: isp1\n    device: eth0\n    health:\n      targets: icmp 203.0.113.1\n      min_targets: 2\n",
			`x.yaml:6:20: identities[0].health.min_targets: needs a whole number from 1 to 1`},
		{"identities:\n  - name: isp1\n    device: eth0\n    health:\n      interval: 1s\n",
			`x.yaml:5:7: identities[0].health.targets: missing`},
		{base + "groups:\n  - name: g\n    failover: [isp1, nope]\n",
			`x.yaml:13:22: groups[0].failover[1]: no identity "nope"`},
		{base + "groups:\n  - name: g\n    balance: {isp1: 3, isp2: 0}\n",
			`x.yaml:13:30: groups[0].balance.isp2: "0" is not a whole number from 1 to 256`},
		{base + "groups:\n  - name: isp1\n    failover: [isp1, isp2]\n",
			`x.yaml:12:11: groups[0].name: "isp1" is already an identity`},
		{base + "groups:\n  - name: g\n    failover: [isp1, isp2]\n    balance: {isp1: 1, isp2: 1}\n",
			`groups[0].balance: a group is either failover or balance, not both`},
		{base + "groups:\n  - name: g\n    balance: {isp1: 1, isp2: 1}\n    fallback: clear\n",
			`groups[0].fallback: fallback belongs to a failover group`},
		{vpns + base + "groups:\n  - name: g\n    failover: [wg, isp1]\n",
			`x.yaml:13:15: groups[0].failover: isp1 is not a tunnel: failing over from wg to it sends the traffic in clear; add ` + "`fallback: clear`"},
		{vpns + base + "groups:\n  - name: g\n    balance: {wg: 1, isp1: 1}\n",
			`groups[0].balance: wg is a tunnel and isp1 is not`},
		{base + "groups:\n  - name: g\n    failover: [isp1, isp2]\nroutes:\n  - to: 192.0.2.0/24\n    via: h\n",
			`x.yaml:16:10: routes[0].via: no identity "h"`},
		{base + "groups:\n  - name: g\n    failover: [isp1, isp2]\nlocal:\n  - to: 192.0.2.0/24\n    via: g\n    source: 10.0.0.1\n",
			`local[0].via: "g" is a group; only routes, the redirect and selectors take a group, here name an identity`},
	} {
		_, err := Parse([]byte(c.body), "x.yaml", Options{TableNames: testTables})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config:\n%s\ngot error %v\nwant it to contain %q", c.body, err, c.want)
		}
	}
	// With fallback: clear the tunnel-to-clear failover is accepted.
	if _, err := Parse([]byte(vpns+base+"groups:\n  - name: g\n    failover: [wg, isp1]\n    fallback: clear\n"), "x.yaml", Options{TableNames: testTables}); err != nil {
		t.Errorf("fallback: clear refused: %v", err)
	}
}

// TestReadmeFailoverExamples parses the examples of the README's
// failover section, so they stay valid.
func TestReadmeFailoverExamples(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "### Failover and load sharing")
	if start < 0 {
		t.Fatal("README has no failover section")
	}
	end := strings.Index(text[start+1:], "\n### ")
	section := text[start : start+1+end]
	n := 0
	for _, block := range strings.Split(section, "```yaml\n")[1:] {
		yaml := block[:strings.Index(block, "```")]
		if !strings.Contains(yaml, "groups:") {
			continue
		}
		n++
		if _, err := Parse([]byte(yaml), "README.md", Options{TableNames: testTables}); err != nil {
			t.Errorf("README example %d: %v\n%s", n, err, yaml)
		}
	}
	if n != 2 {
		t.Errorf("%d examples with groups in the README's failover section, want 2", n)
	}
}
