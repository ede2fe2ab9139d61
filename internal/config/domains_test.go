package config

import (
	"net/netip"
	"testing"
)

// TestDomainErrors: what the kernel would find only at apply time (or
// not at all) is a config error with the file, line, column and field.
func TestDomainErrors(t *testing.T) {
	const two = "domains: [{name: d1}, {name: d2}]\n"
	cases := []struct{ yaml, want string }{
		{"domains:\n  - name: d1\n    interfaces: [lo]\n", "bad.yaml:3:18: domains[0].interfaces[0]: lo cannot be moved: every namespace has its own loopback device"},
		{"domains:\n  - name: d1\n    interfaces: [eth1, eth1]\n", "bad.yaml:3:24: domains[0].interfaces[1]: eth1 is listed twice"},
		// Two pipes with one device name in one namespace.
		{two + "pipes:\n  - {name: p1, a: {domain: host}, b: {domain: d1, device: x}}\n  - {name: p2, a: {domain: host}, b: {domain: d1, device: x}}\n",
			"bad.yaml:4:59: pipes[1].b.device: device x in d1 is also the pipe end at 3:59 (pipes[0].b.device); give one of them another device name"},
		{two + "pipes:\n  - {name: p1, a: {domain: d1}, b: {domain: d2}}\n  - {name: p2, a: {domain: d1, device: p1}, b: {domain: host}}\n",
			"bad.yaml:4:40: pipes[1].a.device: device p1 in d1 is also the pipe end at 3:20 (pipes[0].a.device); give one of them another device name"},
		{"domains:\n  - name: d1\n    interfaces: [eth1]\npipes:\n  - {name: eth1, a: {domain: host}, b: {domain: d1}}\n",
			"bad.yaml:5:41: pipes[0].b.device: eth1 is also an interface moved into d1; give the pipe end another device name"},
		// Routes into the pipe via an address that is not on the link.
		{two + "pipes:\n  - name: p1\n    a: {domain: d1, address: 10.0.0.1/30, routes: [0.0.0.0/0]}\n    b: {domain: d2, address: 10.0.1.2/30}\n",
			"bad.yaml:4:51: pipes[0].a.routes: routes go via the other end's 10.0.1.2, which is in none of this end's subnets (10.0.0.0/30): give both ends addresses in one subnet"},
		{two + "pipes:\n  - name: p1\n    a: {domain: d1, address: 10.0.0.1/30, routes: [\"::/0\"]}\n    b: {domain: d2, address: 10.0.0.2/30}\n",
			"bad.yaml:4:51: pipes[0].a.routes: routes IPv6 prefixes into the pipe, but the other end has no IPv6 address to route them to"},
		// Flow origins.
		{two + "pipes:\n  - name: p1\n    a: {domain: d1}\n    b: {domain: host}\n    allow: [{from: d2}]\n",
			"bad.yaml:6:20: pipes[0].allow[0].from: d2 is not an end of pipe p1 (d1, host) and has no pipe to either end to come through; declare its traffic by source prefixes"},
		{two + "pipes:\n  - name: p1\n    a: {domain: d1}\n    b: {domain: host}\n    allow: [{from: nowhere}]\n",
			"bad.yaml:6:20: pipes[0].allow[0].from: neither a domain (host, d1, d2) nor source prefixes"},
		{two + "pipes:\n  - name: p1\n    a: {domain: d1}\n    b: {domain: host}\n    allow: [{to: 10.0.0.1}]\n",
			"bad.yaml:6:14: pipes[0].allow[0].from: missing: the flow's origin: a domain (host, d1, d2) or source prefixes"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml), "bad.yaml", Options{TableNames: testTables})
		if err == nil || err.Error() != tc.want {
			t.Errorf("config:\n%s\ngot:  %v\nwant: %s", tc.yaml, err, tc.want)
		}
	}
}

// TestFlowOrigins: a flow comes from a pipe end, from a domain with a
// pipe to one of the ends (declared after it or before), or from source
// prefixes.
func TestFlowOrigins(t *testing.T) {
	cfg, err := Parse([]byte(`
domains: [{name: d1}, {name: d2}]
pipes:
  - name: p2
    a: {domain: host}
    b: {domain: d2}
    allow:
      - {from: host}
      - {from: d1, to: 10.0.0.7}
      - {from: [192.0.2.0/24, "2001:db8::/32"]}
  - name: p1
    a: {domain: host}
    b: {domain: d1}
`), "good.yaml", Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	fl := cfg.Pipes[0].Allow
	if len(fl) != 3 || fl[0].From != HostDomain || fl[1].From != "d1" || fl[2].From != "" ||
		len(fl[2].Sources) != 2 || fl[2].Sources[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("flows decoded wrong: %+v", fl)
	}
	if got := cfg.PipeDevices(HostDomain, "d1"); len(got) != 1 || got[0] != "p1" {
		t.Errorf("PipeDevices(host, d1) = %v, want [p1]", got)
	}
}

// TestEmptyAllowIsClosed: `allow: []` lets nothing but replies across;
// only a pipe without allow is open.
func TestEmptyAllowIsClosed(t *testing.T) {
	cfg, err := Parse([]byte("domains: [{name: d1}]\npipes:\n  - {name: p1, a: {domain: host}, b: {domain: d1}, allow: []}\n  - {name: p2, a: {domain: host}, b: {domain: d1}}\n"),
		"good.yaml", Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pipes[0].Allow == nil || len(cfg.Pipes[0].Allow) != 0 || cfg.Pipes[1].Allow != nil {
		t.Errorf("allow: [] decoded as %#v (want empty, not nil); no allow as %#v (want nil)", cfg.Pipes[0].Allow, cfg.Pipes[1].Allow)
	}
}
