package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Two domains joined by a pipe, each with a speaker; the host peers by
// address with a router outside.
const bgpGood = `
bgp:
  asn: 64500
  router_id: 198.51.100.1
  originate: [10.0.0.0/16]
  neighbors:
    - address: 198.51.100.2
      asn: 64999
      accept: [203.0.113.0/24, 0.0.0.0/0]
      allow_default: true
      max_prefixes: 5
      max_prefix_action: restart
domains:
  - name: red
    bgp:
      asn: 64501
      bfd: true
      hold_time: 3
      table: 100
      neighbors:
        - pipe: rb
  - name: blue
    identities:
      - name: tun
        device: tun0
        address: 10.9.0.2
        gateway: 10.9.0.1
    routes:
      - to: [10.77.0.0/16, 0.0.0.0/0]
        via: tun
    bgp:
      asn: 64502
      neighbors:
        - pipe: rb
          name: to_red
        - identity: tun
          asn: 65001
pipes:
  - name: rb
    a: {domain: red, address: [10.250.0.1/30], routes: [10.2.0.0/24]}
    b: {domain: blue, address: [10.250.0.2/30], routes: [10.1.0.0/24, 0.0.0.0/0]}
`

func TestBGPGood(t *testing.T) {
	cfg, err := Parse([]byte(bgpGood), "bgp.yaml", Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	all := cfg.AllBGP()
	if len(all) != 3 || all[0].Domain != HostDomain || all[1].Domain != "red" || all[2].Domain != "blue" {
		t.Fatalf("speakers: %+v", all)
	}
	host, red, blue := all[0].BGP, all[1].BGP, all[2].BGP
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	hn := host.Neighbors[0]
	if hn.Name != "peer_198_51_100_2" || hn.ASN != 64999 || !slices.Equal(hn.Accept, pfx("203.0.113.0/24", "0.0.0.0/0")) ||
		hn.MaxPrefixes != 5 || hn.MaxPrefixAction != "restart" || !slices.Equal(hn.Export, pfx("10.0.0.0/16")) || host.Table != 254 {
		t.Errorf("host speaker: %+v %+v", host, hn)
	}
	// red originates what blue's end routes into the pipe, without the
	// default route; blue's is the mirror.
	if !slices.Equal(red.Originate, pfx("10.1.0.0/24")) || !slices.Equal(blue.Originate, pfx("10.2.0.0/24")) {
		t.Errorf("originate: red %v, blue %v", red.Originate, blue.Originate)
	}
	rn := red.Neighbors[0]
	if rn.Name != "pipe_rb" || rn.Address != netip.MustParseAddr("10.250.0.2") || rn.Local != netip.MustParseAddr("10.250.0.1") ||
		rn.ASN != 64502 || !slices.Equal(rn.Accept, blue.Originate) || rn.MaxPrefixes != 1+DefaultMaxPrefixSlack ||
		rn.MaxPrefixAction != "disable" || red.RouterID != netip.MustParseAddr("10.250.0.1") || !red.BFD || red.HoldTime != 3 || red.Table != 100 {
		t.Errorf("red speaker: %+v %+v", red, rn)
	}
	bp, bt := blue.Neighbors[0], blue.Neighbors[1]
	if bp.Name != "to_red" || !slices.Equal(bp.Accept, red.Originate) || bp.ASN != 64501 {
		t.Errorf("blue's pipe neighbor: %+v", bp)
	}
	// By identity: its gateway, its address, the routes via it without
	// the default route.
	if bt.Name != "id_tun" || bt.Address != netip.MustParseAddr("10.9.0.1") || bt.Local != netip.MustParseAddr("10.9.0.2") ||
		!slices.Equal(bt.Accept, pfx("10.77.0.0/16")) || bt.ASN != 65001 {
		t.Errorf("blue's identity neighbor: %+v", bt)
	}
}

func TestBGPErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"no asn", "bgp:\n  neighbors:\n    - {address: 10.0.0.1, asn: 1, accept: [10.1.0.0/16]}\n",
			"bad.yaml:2:3: bgp.asn: missing"},
		{"bad asn", "bgp:\n  asn: 0\n  neighbors: []\n", "bad.yaml:2:8: bgp.asn: \"0\" is not a whole number"},
		{"no neighbors", "bgp:\n  asn: 1\n  router_id: 10.0.0.1\n", "bad.yaml:2:3: bgp.neighbors: missing"},
		{"two ways", "bgp:\n  asn: 1\n  neighbors:\n    - {address: 10.0.0.1, pipe: x}\n",
			"bad.yaml:4:17: bgp.neighbors[0].address: give one of pipe, identity or address, not pipe and address"},
		{"no accept", "bgp:\n  asn: 1\n  neighbors:\n    - {address: 10.0.0.1, asn: 2, local: 10.0.0.2}\n",
			"bad.yaml:4:8: bgp.neighbors[0].accept: missing: list the prefixes"},
		{"no peer asn", "bgp:\n  asn: 1\n  neighbors:\n    - {address: 10.0.0.1, accept: 10.1.0.0/16}\n",
			"bad.yaml:4:8: bgp.neighbors[0].asn: missing"},
		{"router id", "bgp:\n  asn: 1\n  neighbors:\n    - {address: 10.0.0.1, asn: 2, accept: 10.1.0.0/16}\n",
			"bad.yaml:2:3: bgp.router_id: missing"},
		{"v6 router id", "bgp:\n  asn: 1\n  router_id: 2001:db8::1\n  neighbors: []\n",
			"bad.yaml:3:14: bgp.router_id: 2001:db8::1: a router id is written as an IPv4 address"},
		{"family", "bgp:\n  asn: 1\n  router_id: 10.0.0.9\n  neighbors:\n    - {address: 10.0.0.1, asn: 2, accept: [\"2001:db8::/32\"]}\n",
			"bad.yaml:5:43: bgp.neighbors[0].accept: 2001:db8::/32: a session with 10.0.0.1 carries IPv4 prefixes only"},
		{"no pipe", "bgp:\n  asn: 1\n  router_id: 10.0.0.9\n  neighbors:\n    - pipe: nope\n",
			"bad.yaml:5:13: bgp.neighbors[0].pipe: no pipe \"nope\""},
		{"action", "bgp:\n  asn: 1\n  neighbors:\n    - {address: 10.0.0.1, max_prefix_action: explode}\n",
			"bad.yaml:4:46: bgp.neighbors[0].max_prefix_action: unknown action \"explode\""},
		{"unknown key", "bgp:\n  asn: 1\n  peers: []\n", "bad.yaml:3:3: bgp.peers: unknown field"},
		{"engine", "bgp:\n  engine: quagga\n  asn: 1\n", "bad.yaml:2:11: bgp.engine: unknown engine \"quagga\""},
		{"frr table", "bgp:\n  engine: frr\n  asn: 1\n  table: 100\n  neighbors:\n    - {address: 10.0.0.1}\n",
			"bad.yaml:4:10: bgp.table: with engine frr, learned routes go into the main table only"},
		{"frr block", "bgp:\n  engine: frr\n  asn: 1\n  neighbors:\n    - {address: 10.0.0.1, max_prefix_action: block}\n",
			"bad.yaml:5:46: bgp.neighbors[0].max_prefix_action: engine frr has no block action"},
		{"dup name", "bgp:\n  asn: 1\n  neighbors:\n    - {address: 10.0.0.1, name: a}\n    - {address: 10.0.0.2, name: a}\n",
			"bad.yaml:5:33: bgp.neighbors[1].name: neighbor \"a\" is named twice"},
		{"identity gw", "identities:\n  - {name: t, vpn: v}\nvpns:\n  - {name: v, type: openvpn}\nbgp:\n  asn: 1\n  neighbors:\n    - identity: t\n",
			"bad.yaml:8:17: bgp.neighbors[0].identity: identity t has no literal gateway"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "bad.yaml", Options{TableNames: testTables})
			if err == nil {
				t.Fatalf("no error")
			}
			if c.want != "" && !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error:\n  %v\nwant prefix:\n  %s", err, c.want)
			}
		})
	}
}

func TestBGPPipeOfAnotherDomain(t *testing.T) {
	y := strings.Replace(bgpGood, "        - pipe: rb\n          name: to_red\n", "", 1)
	y = strings.Replace(y, "  - name: red\n    bgp:", "  - name: green\n  - name: red\n    bgp:", 1)
	y = strings.Replace(y, "    a: {domain: red,", "    a: {domain: green,", 1)
	_, err := Parse([]byte(y), "bgp.yaml", Options{TableNames: testTables})
	if err == nil || !strings.Contains(err.Error(), "bgp.yaml:22:17: domains[1].bgp.neighbors[0].pipe: pipe rb joins green and blue, not this domain (red)") {
		t.Errorf("error: %v", err)
	}
}
