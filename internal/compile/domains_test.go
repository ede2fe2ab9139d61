package compile

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

func compileSystemYAML(t *testing.T, yaml string, top *state.State) (*System, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: map[string]uint32{"main": 254}})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	top.Namespace = "top"
	return CompileSystem(cfg, "top", Observed{"top": top}, nil)
}

// TestAllocationSkipsRouteTables: an identity without a table never gets
// a table a route entry of the same config names.
func TestAllocationSkipsRouteTables(t *testing.T) {
	res, err := compileYAML(t, `
identities:
  - {name: out, device: eth0}
routes:
  - {to: 198.51.100.0/24, type: blackhole, table: 1000}
`, labClient())
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Identities[0].Table; got == 1000 {
		t.Fatalf("identity out was allocated table 1000, which the route entry names")
	} else if got != 1001 {
		t.Errorf("identity out: table %d, want 1001 (the next free one)", got)
	}
}

// TestPipeDeviceNotAdopted: a pipe end whose device exists and is not
// this pipe's is refused, with the end's position, whoever owns it.
func TestPipeDeviceNotAdopted(t *testing.T) {
	const yaml = `
domains:
  - name: dom
pipes:
  - name: p1
    a: {domain: host, address: 10.253.1.1/30}
    b: {domain: dom, address: 10.253.1.2/30}
`
	for _, tc := range []struct {
		alias, want string
	}{
		{"", "test.yaml:6:9: pipes[0].a.device: veth p1 exists in namespace top and is not tunroute's"},
		{"tunroute:pipe old", `test.yaml:6:9: pipes[0].a.device: device p1 in namespace top is tunroute's "tunroute:pipe old", not pipe p1's`},
	} {
		top := labClient()
		top.Links = append(top.Links, state.Link{Index: 7, Name: "p1", Kind: "veth", Up: true, Alias: tc.alias})
		_, err := compileSystemYAML(t, yaml, top)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("alias %q: error %v, want %q", tc.alias, err, tc.want)
		}
	}
	// This pipe's own device is no obstacle.
	top := labClient()
	top.Links = append(top.Links, state.Link{Index: 7, Name: "p1", Kind: "veth", Up: true, Alias: "tunroute:pipe p1"})
	if _, err := compileSystemYAML(t, yaml, top); err != nil {
		t.Errorf("the pipe's own device: %v", err)
	}
}

// TestMissingInterfaceNote: an interface to move that exists nowhere is
// said in a note.
func TestMissingInterfaceNote(t *testing.T) {
	sys, err := compileSystemYAML(t, `
domains:
  - name: dom
    interfaces: [eth0, tun7]
`, labClient())
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(sys.Domains[1].Result.Notes, "\n")
	if !strings.Contains(notes, "interface tun7 does not exist") || strings.Contains(notes, "interface eth0 does not") {
		t.Errorf("notes:\n%s\nwant one for tun7 only", notes)
	}
}

// TestNetmapIdentityNote: an identity on an address a netmap maps onto
// gets a warning (its replies would leave by its device).
func TestNetmapIdentityNote(t *testing.T) {
	top := labClient()
	top.Links = append(top.Links, state.Link{Index: 9, Name: "lan9", Kind: "veth", Up: true, Carrier: true})
	top.Addrs = append(top.Addrs, state.Addr{Dev: "lan9", Index: 9, Prefix: netip.MustParsePrefix("10.0.0.1/24"), Scope: state.ScopeUniverse})
	top.Routes = append(top.Routes, connectedRoute(netip.MustParsePrefix("10.0.0.1/24"), "lan9"))
	sys, err := compileSystemYAML(t, `
domains:
  - name: work
    interfaces: [lan9]
    identities:
      - {name: lan, device: lan9, address: 10.0.0.1, gateway: 10.0.0.254}
pipes:
  - name: nm
    a: {domain: host, address: 10.250.1.1/30, routes: [10.100.0.0/24]}
    b: {domain: work, address: 10.250.1.2/30, routes: [10.250.0.0/16], netmap: {outside: 10.100.0.0/24, inside: 10.0.0.0/24}}
`, top)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(sys.Domains[1].Result.Notes, "\n")
	if !strings.Contains(notes, "identity lan's rule `from 10.0.0.1 iif lo` sends the replies to connections that come in through pipe nm") {
		t.Errorf("notes:\n%s\nwant the netmap warning", notes)
	}
}

// TestPipeFlowsByOrigin: `from: host` is the top namespace's own traffic;
// what the top namespace forwards into a pipe must be declared by its
// real origin (a domain with a pipe to it, matched by that pipe's device,
// or source prefixes), else it is dropped where it enters the pipe.
func TestPipeFlowsByOrigin(t *testing.T) {
	sys, err := compileSystemYAML(t, `
domains:
  - name: d1
  - name: d2
pipes:
  - name: p1
    a: {domain: host, address: 10.253.1.1/30}
    b: {domain: d1, address: 10.253.1.2/30, routes: [10.253.0.0/16]}
  - name: p2
    a: {domain: host, address: 10.253.2.1/30, routes: [10.100.0.0/24]}
    b: {domain: d2, address: 10.253.2.2/30, netmap: {outside: 10.100.0.0/24, inside: 10.0.0.0/24}}
    allow:
      - {from: host, to: 10.0.0.5, proto: tcp, port: 22}
      - {from: d1, to: 10.0.0.7, proto: tcp, port: 443}
      - {from: [192.0.2.0/24, "2001:db8:1::/48"], proto: udp, port: 53}
`, labClient())
	if err != nil {
		t.Fatal(err)
	}
	chain := func(d int, name string) []string {
		var out []string
		for _, c := range sys.Domains[d].Result.State.Firewall.Chains {
			if c.Name == name {
				for _, r := range c.Rules {
					out = append(out, r.String())
				}
			}
		}
		return out
	}
	guard := chain(0, ChainPipeForwardOut)
	want := []string{
		`oifname "p2" ct state { established, related } accept "pipe p2: replies forwarded into it"`,
		`meta nfproto ipv4 iifname "p1" oifname "p2" ip daddr 10.100.0.7 meta l4proto tcp th dport 443 accept "pipe p2: forwarded into it, declared flow from d1"`,
		`meta nfproto ipv4 oifname "p2" ip saddr 192.0.2.0/24 meta l4proto udp th dport 53 accept "pipe p2: forwarded into it, declared flow from 192.0.2.0/24, 2001:db8:1::/48"`,
		`meta nfproto ipv6 oifname "p2" ip6 saddr 2001:db8:1::/48 meta l4proto udp th dport 53 accept "pipe p2: forwarded into it, declared flow from 192.0.2.0/24, 2001:db8:1::/48"`,
		`oifname "p2" counter drop "pipe p2: forwarded into it, undeclared"`,
	}
	if !slices.Equal(guard, want) {
		t.Errorf("the host's guard of what it forwards into p2:\n%s\nwant\n%s", strings.Join(guard, "\n"), strings.Join(want, "\n"))
	}
	// p2 carries d1's flow through the host: the host's own traffic
	// into p2 is held to its own flow (to the outside address).
	own := chain(0, ChainPipeOutput)
	if len(own) != 4 || !strings.Contains(own[2], `oifname "p2" ip daddr 10.100.0.5 meta l4proto tcp th dport 22 accept "pipe p2: own declared flow into it"`) ||
		!strings.Contains(own[3], "counter drop") {
		t.Errorf("the host's own traffic into p2:\n%s", strings.Join(own, "\n"))
	}
	in := strings.Join(chain(2, ChainPipeForward), "\n")
	for _, w := range []string{"ip daddr 10.0.0.5 meta l4proto tcp th dport 22 accept", "ip daddr 10.0.0.7 meta l4proto tcp th dport 443 accept",
		"ip saddr 192.0.2.0/24 meta l4proto udp th dport 53 accept"} {
		if !strings.Contains(in, w) {
			t.Errorf("d2's inbound rules lack %q:\n%s", w, in)
		}
	}
	// d2 forwards into p2 towards the host only replies and the flow
	// from source prefixes (which may cross either way): no flow is
	// declared from a domain it has a pipe to.
	if g := chain(2, ChainPipeForwardOut); len(g) != 4 || strings.Contains(strings.Join(g, "\n"), "iifname") {
		t.Errorf("d2's guard:\n%s\nwant replies, the prefixes' flow and the drop", strings.Join(g, "\n"))
	}
}
