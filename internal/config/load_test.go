package config

import (
	"net/netip"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

var testTables = map[string]uint32{"main": 254, "local": 255, "default": 253, "vpn": 10}

func TestParseGood(t *testing.T) {
	cfg, err := Parse([]byte(`
settings:
  table_base: 300
  priority_base: 7000
tables:
  office: 42
identities:
  - name: inside
    device: wg0
    addresses: [10.30.0.2, 2001:db8:30::2]
    gateway: none
    table: office
    priority: 5000
  - name: outside
    device: eth0
    gateway: [10.1.0.1, fe80::1]
    table: vpn
routes:
  - to: 10.99.0.0/16
    via: inside
  - to: [203.0.113.7, 2001:db8:99::/48]
    via: outside
    metric: 10
    table: default
  - to: 198.51.100.0/25
    type: prohibit
local:
  - to: 10.20.0.0/16
    via: inside
    source: 10.10.0.1
    add_address: lo
redirect:
  via: inside
  servers: [198.51.100.2]
  lan: 192.168.1.0/24
  families: [ipv4, ipv6]
`), "good.yaml", Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	in, out := cfg.Identities[0], cfg.Identities[1]
	if cfg.TableBase != 300 || cfg.PriorityBase != 7000 || in.Table != 42 || in.Priority != 5000 || out.Table != 10 ||
		in.Gateway != GatewayNone || out.Gateway != GatewayLiteral || len(out.Gateways) != 2 || !out.AutoAddresses ||
		in.AutoAddresses || len(in.Addresses) != 2 {
		t.Errorf("identities decoded wrong: %+v %+v", in, out)
	}
	r := cfg.Routes[1]
	if r.To[0] != netip.MustParsePrefix("203.0.113.7/32") || r.Metric != 10 || r.Table != 253 || r.Via != "outside" {
		t.Errorf("route decoded wrong: %+v", r)
	}
	if cfg.Routes[2].Type != state.RouteProhibit || cfg.Local[0].AddAddress != "lo" || !cfg.Redirect.IPv6 ||
		cfg.Redirect.LAN[0] != netip.MustParsePrefix("192.168.1.0/24") {
		t.Errorf("decoded wrong: %+v %+v %+v", cfg.Routes[2], cfg.Local[0], cfg.Redirect)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"identities: [\n", "bad.yaml:1:13: yaml: sequence end token ']' not found"},
		{"identitties: []\n", "bad.yaml:1:1: identitties: unknown field; expected one of: settings, tables, vpns, vxlan, devices, identities, groups, routes, local, redirect, select, killswitch, bgp, domains, pipes, assert"},
		{"identities:\n  name: x\n", "bad.yaml:2:3: identities: expected a list, found a mapping"},
		{"identities:\n  - device: wg0\n", "bad.yaml:2:5: identities[0].name: missing"},
		{"identities:\n  - name: 1x\n    device: wg0\n", `bad.yaml:2:11: identities[0].name: "1x": a name starts with a letter and holds only letters, digits, '_', '.', '-'`},
		{"identities:\n  - name: a\n    device: averyveryverylongname\n", `bad.yaml:3:13: identities[0].device: "averyveryverylongname": device names are at most 15 characters`},
		{"identities:\n  - name: a\n    device: wg/0\n", `bad.yaml:3:13: identities[0].device: "wg/0" is not a valid device name`},
		{"identities:\n  - name: a\n    device: wg0\n    gateway: 10.1.0\n", `bad.yaml:4:14: identities[0].gateway: "10.1.0" is not an IP address, "auto" or "none"`},
		{"identities:\n  - name: a\n    device: wg0\n    gateway: [10.1.0.1, 10.1.0.2]\n", "bad.yaml:4:25: identities[0].gateway[1]: a second gateway of the same family; give at most one IPv4 and one IPv6 gateway"},
		{"identities:\n  - name: a\n    device: wg0\n    gateway: [auto, 10.1.0.2]\n", `bad.yaml:4:15: identities[0].gateway[0]: "auto" stands alone, not in a list`},
		{"identities:\n  - name: a\n    device: wg0\n    address: 10.1.0.0/24\n", `bad.yaml:4:14: identities[0].address: "10.1.0.0/24" is a prefix; give a single address here`},
		{"identities:\n  - name: a\n    device: wg0\n    address: [auto, 10.1.0.1]\n", `bad.yaml:4:14: identities[0].address: "auto" cannot be mixed with literal addresses`},
		{"identities:\n  - name: a\n    device: wg0\n    address: 10.1.0.1\n    addresses: [10.1.0.2]\n", "bad.yaml:5:16: identities[0].addresses: give either address or addresses, not both"},
		{"identities:\n  - name: a\n    device: wg0\n    table: 254\n", "bad.yaml:4:12: identities[0].table: table 254 is reserved (main); pick another or leave it out to have one allocated"},
		{"identities:\n  - name: a\n    device: wg0\n    table: 51820\n", "bad.yaml:4:12: identities[0].table: table 51820 is reserved (wg-quick); pick another or leave it out to have one allocated"},
		{"identities:\n  - name: a\n    device: wg0\n    table: nosuch\n", `bad.yaml:4:12: identities[0].table: unknown table "nosuch": give a number, or name it under ` + "`tables:`" + ` or in /etc/iproute2/rt_tables`},
		{"identities:\n  - name: a\n    device: wg0\n    priority: 40000\n", `bad.yaml:4:15: identities[0].priority: "40000" is not a whole number from 1 to 32765`},
		{"identities:\n  - {name: a, device: wg0, table: 7}\n  - {name: b, device: eth0, table: 7}\n", `bad.yaml:3:36: identities[1].table: table 7 is already the table of identity "a"`},
		{"identities:\n  - {name: a, device: wg0}\n  - {name: a, device: eth0}\n", `bad.yaml:3:12: identities[1].name: identity "a" is defined twice`},
		{"routes:\n  - to: 10.0.0.0/8\n", "bad.yaml:2:5: routes[0].via: missing: name the identity the destinations go through, or give a type (blackhole, unreachable, prohibit, throw)"},
		{"routes:\n  - to: 10.0.0.0/8\n    via: vpn\n", `bad.yaml:3:10: routes[0].via: no identity "vpn": the config defines no identities`},
		{"identities: [{name: a, device: wg0}]\nroutes:\n  - to: 10.0.0.0/8\n    via: vpn\n", `bad.yaml:4:10: routes[0].via: no identity "vpn"; defined: a`},
		{"routes:\n  - to: 10.1.0.5/24\n    type: blackhole\n", "bad.yaml:2:9: routes[0].to: 10.1.0.5/24 has host bits set; did you mean 10.1.0.0/24?"},
		{"routes:\n  - to: [10.0.0.0/8, nonsense]\n    type: blackhole\n", `bad.yaml:2:22: routes[0].to[1]: "nonsense" is not a prefix or address`},
		{"routes:\n  - to: 10.0.0.0/8\n    type: drop\n", `bad.yaml:3:11: routes[0].type: unknown route type "drop"; expected unicast, blackhole, unreachable, prohibit or throw`},
		{"identities: [{name: a, device: wg0}]\nroutes:\n  - to: 10.0.0.0/8\n    type: blackhole\n    via: a\n", "bad.yaml:5:10: routes[0].via: a blackhole route goes nowhere; remove `via` or the type"},
		{"routes:\n  - to: 10.0.0.0/8\n    type: blackhole\n    table: local\n", "bad.yaml:4:12: routes[0].table: the local table belongs to the kernel"},
		{"routes:\n  - to: []\n    type: blackhole\n", "bad.yaml:2:9: routes[0].to: is empty"},
		{"identities: [{name: a, device: wg0}]\nlocal:\n  - to: 10.20.0.0/16\n    via: a\n", "bad.yaml:3:5: local[0].source: missing"},
		{"identities: [{name: a, device: wg0}]\nlocal:\n  - to: 10.20.0.0/16\n    via: a\n    source: 2001:db8::1\n", "bad.yaml:3:9: local[0].to: 10.20.0.0/16 and source 2001:db8::1 are of different families; use one local entry per family"},
		{"identities: [{name: a, device: wg0}]\nredirect:\n  via: a\n", "bad.yaml:3:3: redirect.servers: missing: list the VPN servers' real addresses (or take the identity from a vpn, whose hook reports them); without a route to them via the original gateway the tunnel would be routed into itself"},
		{"identities: [{name: a, device: wg0}]\nredirect:\n  via: a\n  servers: [198.51.100.2]\n  families: [ipx]\n", `bad.yaml:5:14: redirect.families[0]: unknown family "ipx"; expected ipv4 or ipv6`},
		{"settings:\n  table_base: 255\n", "bad.yaml:2:15: settings.table_base: table 255 is reserved"},
		{"tables:\n  9bad: 3\n", "bad.yaml:2:9: tables.9bad: table name must start with a letter and hold only letters, digits, '_', '.', '-'"},
		{"a: 1\n---\nb: 2\n", "bad.yaml: holds 2 YAML documents; tunroute reads one"},
		{"vpns:\n  - {name: w, type: openvpn, servers: [\"198.51.100.2/udp\"]}\n", `bad.yaml:2:40: vpns[0].servers[0]: "198.51.100.2/udp": a transport needs a port (ADDR:PORT/udp)`},
		{"vpns:\n  - {name: w, type: openvpn, servers: [\"198.51.100.2:1194/icmp\"]}\n", `bad.yaml:2:40: vpns[0].servers[0]: "198.51.100.2:1194/icmp": the transport after / is udp or tcp`},
		{"vpns:\n  - {name: w, type: wireguard}\n", `bad.yaml:2:21: vpns[0].type: WireGuard has no daemon to call a hook: declare the device under devices: (type: wireguard; table: auto gives wg-quick's full tunnel)`},
		{"vpns:\n  - {name: w, type: ipsec}\n", `bad.yaml:2:21: vpns[0].type: unknown VPN type "ipsec"; expected one of: openvpn, tinc, strongswan`},
		{"vpns:\n  - {name: w, type: openvpn, device: tun0}\n", `bad.yaml:2:38: vpns[0].device: device is for a strongswan vpn (its daemon reports no device); openvpn reports its own`},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml), "bad.yaml", Options{TableNames: testTables})
		if err == nil || err.Error() != tc.want {
			t.Errorf("config:\n%s\ngot:  %v\nwant: %s", tc.yaml, err, tc.want)
		}
	}
}

func TestEmptyConfigIsValid(t *testing.T) {
	cfg, err := Parse(nil, "empty.yaml", Options{TableNames: testTables})
	if err != nil || len(cfg.Identities) != 0 {
		t.Fatalf("empty config: %v %+v", err, cfg)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("identities:\n  - {name: a, device: wg0, gateway: none}\nredirect: {via: a, servers: [198.51.100.2]}\n"))
	f.Add([]byte("routes:\n  - to: [10.0.0.0/8]\n    type: blackhole\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml", Options{TableNames: testTables})
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
	})
}
