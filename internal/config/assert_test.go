package config

import (
	"strings"
	"testing"
)

const assertBase = `identities:
  - {name: work, device: tun0}
  - {name: outside, device: eth0}
domains:
  - name: private
  - name: hostile
`

func TestAssertGood(t *testing.T) {
	cfg, err := Parse([]byte(assertBase+`assert:
  - {from: 10.30.0.0/24, never_via: eth0}
  - {uid: 1001-1002, only_via: [work]}
  - {name: office, to: 10.20.0.0/16, via: work}
  - {proto: udp, port: 53, only_via: [work, wg0]}
  - {iif: br0, never_via: [outside]}
  - {from_domain: hostile, to_domain: private, never: true}
`), "good.yaml", Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Asserts) != 6 {
		t.Fatalf("%d asserts", len(cfg.Asserts))
	}
	a := cfg.Asserts
	if a[0].NeverVia[0] != "eth0" || a[0].Traffic != "local" || a[0].From[0].String() != "10.30.0.0/24" {
		t.Errorf("assert[0]: %+v", a[0])
	}
	if a[1].UID.Start != 1001 || a[1].UID.End != 1002 || a[1].OnlyVia[0] != "work" {
		t.Errorf("assert[1]: %+v", a[1])
	}
	if a[2].Name != "office" || a[2].Via != "work" {
		t.Errorf("assert[2]: %+v", a[2])
	}
	if a[3].Proto != 17 || a[3].Ports[0].Start != 53 || len(a[3].OnlyVia) != 2 {
		t.Errorf("assert[3]: %+v", a[3])
	}
	if a[4].Traffic != "forwarded" || a[4].IIF != "br0" {
		t.Errorf("assert[4]: %+v", a[4])
	}
	if !a[5].Never || a[5].FromDomain != "hostile" || a[5].ToDomain != "private" {
		t.Errorf("assert[5]: %+v", a[5])
	}
	if p := a[2].At("via"); p.Line != 10 || p.File != "good.yaml" {
		t.Errorf("position of assert[2].via: %+v", p)
	}
}

func TestAssertErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"assert:\n  - {to: 10.0.0.0/8}\n", "bad.yaml:8:6: assert[0]: missing the expectation: one of never_via, only_via, via, never"},
		{"assert:\n  - {to: 10.0.0.0/8, via: work, never: true}\n", "bad.yaml:8:40: assert[0].never: give one expectation, not via and never"},
		{"assert:\n  - {to: 10.0.0.5/8, via: work}\n", "bad.yaml:8:10: assert[0].to: 10.0.0.5/8 has host bits set; did you mean 10.0.0.0/8?"},
		{"assert:\n  - {to: 10.0.0.0/8, via: [work, outside]}\n", "bad.yaml:8:27: assert[0].via: via names one identity or device (only_via takes a list)"},
		{"assert:\n  - {to: 10.0.0.0/8, never_via: \"bad/name\"}\n", "bad.yaml:8:33: assert[0].never_via: \"bad/name\" is neither an identity nor a device name"},
		{"assert:\n  - {uid: 1001, iif: eth0, never: true}\n", "assert[0].uid: uid and cgroup select what local processes send"},
		{"assert:\n  - {to: 10.0.0.0/8, traffic: sideways, never: true}\n", "bad.yaml:8:31: assert[0].traffic: \"sideways\": expected local (sent by this host), forwarded or all"},
		{"assert:\n  - {from_domain: hostile, to_domain: nowhere, never: true}\n", "bad.yaml:8:39: assert[0].to_domain: no domain \"nowhere\" (host is the top level)"},
		{"assert:\n  - {from_domain: hostile, never: true}\n", "assert[0].to_domain: from_domain and to_domain go together"},
		{"assert:\n  - {from_domain: hostile, to_domain: private, never_via: eth0}\n", "from_domain/to_domain take never: true"},
		{"assert:\n  - {to: 10.0.0.0/8, never: false}\n", "never: false asserts nothing; leave it out"},
		{"assert:\n  - {to: 10.0.0.0/8, nevr: true}\n", "bad.yaml:8:22: assert[0].nevr: unknown field"},
		{"assert: {to: 10.0.0.0/8, never: true}\n", "bad.yaml:7:10: assert: expected a list, found a mapping"},
	} {
		_, err := Parse([]byte(assertBase+tc.yaml), "bad.yaml", Options{TableNames: testTables})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}
