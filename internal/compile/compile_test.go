package compile

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/statetest"
)

// labClient is the lab's client namespace before tunroute (an uplink
// eth0 and a tunnel wg0), with a link-local address on eth0 and its
// local route, which compile must leave alone.
func labClient() *state.State {
	s := statetest.LabClient()
	s.Addrs = append(s.Addrs, state.Addr{Dev: "eth0", Index: 2, Prefix: netip.MustParsePrefix("fe80::1/64"), Scope: state.ScopeLink})
	s.Routes = append(s.Routes, state.Route{Table: 255, Type: state.RouteLocal, Dst: netip.MustParsePrefix("10.1.0.2/32"), Protocol: 2,
		Scope: state.ScopeHost, PrefSrc: netip.MustParseAddr("10.1.0.2"), Nexthops: statetest.Nexthops("", "eth0")})
	return s
}

func compileYAML(t *testing.T, yaml string, obs *state.State) (*Result, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: map[string]uint32{"main": 254, "from.this.host": 2}})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return Compile(cfg, obs, nil)
}

// rendered lists the desired objects in iproute2 words, addresses first.
func rendered(t *testing.T, s *state.State) []string {
	t.Helper()
	var out []string
	for i := range s.Addrs {
		if !s.Addrs[i].Owned() {
			t.Errorf("address %s is not marked as tunroute's", s.Addrs[i].String())
		}
		out = append(out, "addr "+s.Addrs[i].String())
	}
	for i := range s.Routes {
		if !s.Routes[i].Owned() {
			t.Errorf("route %s is not marked as tunroute's", s.Routes[i].String())
		}
		out = append(out, "route "+s.Routes[i].String())
	}
	for i := range s.Rules {
		if !s.Rules[i].Owned() {
			t.Errorf("rule %s is not marked as tunroute's", s.Rules[i].String())
		}
		out = append(out, "rule "+s.Rules[i].String())
	}
	return out
}

func TestCompile(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		want  []string
		notes []string
	}{
		{
			name: "dual identity: two identities with automatic tables and priorities",
			yaml: `
identities:
  - name: inside
    device: wg0
    gateway: none
  - name: outside
    device: eth0
    gateway: auto
`,
			want: []string{
				"route 10.30.0.0/24 dev wg0 table 1000 scope link src 10.30.0.2",
				"route 2001:db8:30::/64 dev wg0 table 1000 src 2001:db8:30::2 metric 1024",
				"route default dev wg0 table 1000 scope link src 10.30.0.2",
				"route default (::/0) dev wg0 table 1000 src 2001:db8:30::2 metric 1024",
				"route 10.1.0.0/24 dev eth0 table 1001 scope link src 10.1.0.2",
				"route 2001:db8:1::/64 dev eth0 table 1001 src 2001:db8:1::2 metric 1024",
				"route default via 10.1.0.1 dev eth0 table 1001 src 10.1.0.2",
				"route default (::/0) via 2001:db8:1::1 dev eth0 table 1001 src 2001:db8:1::2 metric 1024",
				"rule pref 5000 from 10.30.0.2/32 iif lo lookup 1000",
				"rule -6 pref 5000 from 2001:db8:30::2/128 iif lo lookup 1000",
				"rule pref 5001 from 10.1.0.2/32 iif lo lookup 1001",
				"rule -6 pref 5001 from 2001:db8:1::2/128 iif lo lookup 1001",
			},
		},
		{
			name: "dual identity: literal address, explicit table and priority, routes and an exemption",
			yaml: `
settings: {table_base: 200, priority_base: 6000}
identities:
  - name: inside
    device: wg0
    address: 10.30.0.2
    gateway: none
    table: 10
    priority: 5000
  - name: outside
    device: eth0
    address: 10.1.0.2
    gateway: 10.1.0.1
routes:
  - to: [10.99.0.0/16, 203.0.113.0/24]
    via: inside
  - to: 10.99.5.0/24
    via: outside
  - to: 198.51.100.128/25
    type: unreachable
  - to: 2001:db8:dead::/48
    type: blackhole
    table: 77
`,
			want: []string{
				"route 10.30.0.0/24 dev wg0 table 10 scope link src 10.30.0.2",
				"route default dev wg0 table 10 scope link src 10.30.0.2",
				"route 10.1.0.0/24 dev eth0 table 200 scope link src 10.1.0.2",
				"route default via 10.1.0.1 dev eth0 table 200 src 10.1.0.2",
				"route 10.99.0.0/16 dev wg0 table main scope link src 10.30.0.2",
				"route 203.0.113.0/24 dev wg0 table main scope link src 10.30.0.2",
				"route 10.99.5.0/24 via 10.1.0.1 dev eth0 table main src 10.1.0.2",
				"route unreachable 198.51.100.128/25 table main",
				"route blackhole 2001:db8:dead::/48 table 77 metric 1024",
				"rule pref 5000 from 10.30.0.2/32 iif lo lookup 10",
				"rule pref 6001 from 10.1.0.2/32 iif lo lookup 200",
			},
		},
		{
			name: "local traffic table: iproute2 alias with a private-side address on lo",
			yaml: `
identities:
  - name: tunnel
    device: wg0
    address: 10.30.0.2
    gateway: none
local:
  - to: [10.20.0.0/16, 10.21.0.0/16]
    via: tunnel
    source: 10.10.0.1
    add_address: lo
    table: from.this.host
`,
			want: []string{
				"addr 10.10.0.1/32 dev lo",
				"route 10.30.0.0/24 dev wg0 table 1000 scope link src 10.30.0.2",
				"route default dev wg0 table 1000 scope link src 10.30.0.2",
				"route 10.20.0.0/16 dev wg0 table 2 scope link src 10.10.0.1",
				"route 10.21.0.0/16 dev wg0 table 2 scope link src 10.10.0.1",
				"rule pref 5000 from 10.30.0.2/32 iif lo lookup 1000",
				"rule pref 500 from all iif lo lookup 2",
			},
		},
		{
			name: "gateway redirect: IPv4 and IPv6, server host route and LAN",
			yaml: `
identities:
  - name: vpn
    device: wg0
    gateway: none
redirect:
  via: vpn
  servers: [198.51.100.2, 2001:db8:51::2]
  lan: [192.168.0.0/16, 10.1.0.0/24]
`,
			want: []string{
				"route 10.30.0.0/24 dev wg0 table 1000 scope link src 10.30.0.2",
				"route 2001:db8:30::/64 dev wg0 table 1000 src 2001:db8:30::2 metric 1024",
				"route default dev wg0 table 1000 scope link src 10.30.0.2",
				"route default (::/0) dev wg0 table 1000 src 2001:db8:30::2 metric 1024",
				"route 198.51.100.2/32 via 10.1.0.1 dev eth0 table main",
				"route 2001:db8:51::2/128 via 2001:db8:1::1 dev eth0 table main metric 1024",
				"route 192.168.0.0/16 via 10.1.0.1 dev eth0 table main",
				"route 0.0.0.0/1 dev wg0 table main scope link src 10.30.0.2",
				"route 128.0.0.0/1 dev wg0 table main scope link src 10.30.0.2",
				"route ::/1 dev wg0 table main src 2001:db8:30::2 metric 1024",
				"route 8000::/1 dev wg0 table main src 2001:db8:30::2 metric 1024",
				"rule pref 5000 from 10.30.0.2/32 iif lo lookup 1000",
				"rule -6 pref 5000 from 2001:db8:30::2/128 iif lo lookup 1000",
			},
			notes: []string{"redirect: LAN 10.1.0.0/24 already has a more specific route (10.1.0.0/24) than the /1 routes; nothing to add"},
		},
		{
			name: "gateway redirect: limited to IPv4 through a tunnel with a gateway",
			yaml: `
identities:
  - name: vpn
    device: wg0
    address: 10.30.0.2
    gateway: 10.30.0.1
redirect:
  via: vpn
  servers: 198.51.100.2
  families: [ipv4]
`,
			want: []string{
				"route 10.30.0.0/24 dev wg0 table 1000 scope link src 10.30.0.2",
				"route default via 10.30.0.1 dev wg0 table 1000 src 10.30.0.2",
				"route 198.51.100.2/32 via 10.1.0.1 dev eth0 table main",
				"route 0.0.0.0/1 via 10.30.0.1 dev wg0 table main src 10.30.0.2",
				"route 128.0.0.0/1 via 10.30.0.1 dev wg0 table main src 10.30.0.2",
				"rule pref 5000 from 10.30.0.2/32 iif lo lookup 1000",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := compileYAML(t, tc.yaml, labClient())
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got := rendered(t, res.State)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if strings.Join(res.Notes, "\n") != strings.Join(tc.notes, "\n") {
				t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(res.Notes, "\n"), strings.Join(tc.notes, "\n"))
			}
		})
	}
}

// TestCompileIgnoresOwnRoutes: discovery must not see tunroute's own
// routes, or a second run would find its own host route as "the original
// gateway" and its /1 routes as the default.
func TestCompileIgnoresOwnRoutes(t *testing.T) {
	yaml := "identities:\n  - {name: vpn, device: wg0, gateway: none}\nredirect: {via: vpn, servers: [198.51.100.2]}\n"
	first, err := compileYAML(t, yaml, labClient())
	if err != nil {
		t.Fatal(err)
	}
	after := labClient()
	after.Routes = append(after.Routes, first.State.Routes...)
	after.Rules = append(after.Rules, first.State.Rules...)
	second, err := compileYAML(t, yaml, after)
	if err != nil {
		t.Fatal(err)
	}
	a, b := rendered(t, first.State), rendered(t, second.State)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("compiling against the applied state changed the result:\n%s\nvs\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"identities:\n  - name: vpn\n    device: tun9\n",
			"test.yaml:3:13: identities[0].device: device tun9 does not exist in namespace tr-client"},
		{"identities:\n  - name: o\n    device: eth0\n    gateway: 10.9.9.1\n",
			"test.yaml:4:14: identities[0].gateway: gateway 10.9.9.1 is not reachable on eth0: no connected route covers it in namespace tr-client"},
		{"identities:\n  - name: o\n    device: eth0\n    gateway: 10.1.0.1\n",
			"test.yaml:4:14: identities[0].gateway: the identity has IPv6 address 2001:db8:1::2 but no IPv6 gateway; add one, or use auto or none"},
		{"identities:\n  - name: v\n    device: wg0\n    address: 10.30.0.2\n    gateway: auto\n",
			"test.yaml:5:14: identities[0].gateway: cannot discover the IPv4 gateway: the main table has no default route via wg0 in namespace tr-client"},
		{"identities:\n  - name: v\n    device: lo\n",
			"test.yaml:3:13: identities[0].device: lo has no global address in namespace tr-client; give the identity's address with `address:`"},
		{"identities:\n  - {name: v, device: wg0, address: 10.30.0.2, gateway: none}\nroutes:\n  - {to: 2001:db8:99::/48, via: v}\n",
			"test.yaml:4:33: routes[0].via: identity v has no IPv6 address for 2001:db8:99::/48"},
		{"identities:\n  - {name: v, device: wg0, gateway: none}\nroutes:\n  - {to: 10.99.0.0/16, via: v}\n  - {to: 10.99.0.0/16, type: blackhole}\n",
			"test.yaml:5:10: routes[1].to: route 10.99.0.0/16 in table main is also made by routes[0].to (line 4), differently"},
		{"identities:\n  - {name: v, device: wg0, gateway: none}\nredirect: {via: v, servers: [10.30.0.9]}\n",
			"test.yaml:3:30: redirect.servers[0]: the route to 10.30.0.9 already goes through wg0, the tunnel itself"},
		{"identities:\n  - {name: v, device: wg0, gateway: none}\nlocal:\n  - {to: 10.20.0.0/16, via: v, source: 10.10.0.1}\n",
			"test.yaml:4:40: local[0].source: 10.10.0.1 is not an address of this host; add it to a device, or set add_address: lo"},
		{"identities:\n  - {name: v, device: wg0, address: 10.30.0.2, gateway: none}\nredirect: {via: v, servers: [198.51.100.2], families: [ipv6]}\n",
			"test.yaml:3:55: redirect.families: identity v has no IPv6 address to redirect through"},
	}
	for _, tc := range cases {
		_, err := compileYAML(t, tc.yaml, labClient())
		if err == nil || err.Error() != tc.want {
			t.Errorf("config:\n%s\ngot:  %v\nwant: %s", tc.yaml, err, tc.want)
		}
	}
}
