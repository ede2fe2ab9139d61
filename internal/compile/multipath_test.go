package compile

import (
	"maps"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
)

// TestMultipathHashTop: in the namespace tunroute runs in, the hash policy
// a balance group wants is never set (no sysctl in the system's top
// domain) but a note says when the kernel's value differs, and how to
// set it; l3 is settable; no balance group, no word.
func TestMultipathHashTop(t *testing.T) {
	cases := []struct {
		name, settings, have4, have6 string
		want                         []string
	}{
		{"default l4, kernel l3", "", "0", "0", []string{
			"net.ipv4.fib_multipath_hash_policy is 0 here (L3, addresses only); the config wants 1 (L4, addresses and ports). tunroute does not change this namespace's sysctls: set it with `sysctl -w net.ipv4.fib_multipath_hash_policy=1`",
			"net.ipv6.fib_multipath_hash_policy is 0 here (L3, addresses only); the config wants 1",
		}},
		{"default l4, kernel l4", "", "1", "1", nil},
		{"l3 wanted, kernel mixed", "settings: {multipath_hash: l3}\n", "1", "0", []string{
			"net.ipv4.fib_multipath_hash_policy is 1 here (L4, addresses and ports); the config wants 0 (L3, addresses only). tunroute does not change this namespace's sysctls: set it with `sysctl -w net.ipv4.fib_multipath_hash_policy=0`",
		}},
	}
	for _, c := range cases {
		top := twoISPs()
		top.Sysctls = map[string]string{"net.ipv4.fib_multipath_hash_policy": c.have4, "net.ipv6.fib_multipath_hash_policy": c.have6}
		sys, err := compileSystemYAML(t, c.settings+ispConfig, top)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if s := sys.Domains[0].Sysctls; len(s) != 0 {
			t.Errorf("%s: the top namespace gets sysctls %v", c.name, s)
		}
		notes := only(sys.Domains[0].Result.Notes, "multipath_hash_policy")
		if len(notes) != len(c.want) {
			t.Errorf("%s: notes %q, want %d", c.name, notes, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(notes[i], w) {
				t.Errorf("%s: note %q lacks %q", c.name, notes[i], w)
			}
		}
	}
	// No balance group: nothing wanted, nothing said.
	top := twoISPs()
	top.Sysctls = map[string]string{"net.ipv4.fib_multipath_hash_policy": "0"}
	noBalance := strings.Replace(strings.Replace(ispConfig, "  - name: shared\n    balance: {isp1: 3, isp2: 1}\n", "", 1), "via: shared", "via: uplinks", -1)
	sys, err := compileSystemYAML(t, noBalance, top)
	if err != nil {
		t.Fatal(err)
	}
	if notes := only(sys.Domains[0].Result.Notes, "multipath"); len(notes) > 0 || sys.Domains[0].Result.Sysctls != nil {
		t.Errorf("without a balance group: notes %q sysctls %v", notes, sys.Domains[0].Result.Sysctls)
	}
}

// TestMultipathHashDomain: in a routing domain (a namespace tunroute
// owns) the policy is a sysctl to set, L4 by default, l3 when the
// domain's settings say so, beside the domain's forwarding.
func TestMultipathHashDomain(t *testing.T) {
	const domain = `
domains:
  - name: dom
    interfaces: [eth0, eth1]
SETTINGS    identities:
      - {name: a, device: eth0, address: 10.1.0.2, gateway: 10.1.0.1}
      - {name: b, device: eth1, gateway: 10.2.0.1}
    groups:
      - name: shared
        balance: {a: 3, b: 1}
    routes:
      - {to: 198.51.100.0/24, via: shared}
`
	for settings, want := range map[string]string{"": "1", "    settings: {multipath_hash: l3}\n": "0"} {
		sys, err := compileSystemYAML(t, strings.Replace(domain, "SETTINGS", settings, 1), twoISPs())
		if err != nil {
			t.Fatal(err)
		}
		got := sys.Domains[1].Sysctls
		wantAll := map[string]string{"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0",
			"net.ipv4.fib_multipath_hash_policy": want, "net.ipv6.fib_multipath_hash_policy": want}
		if !maps.Equal(got, wantAll) {
			t.Errorf("settings %q: domain sysctls %v, want %v", settings, got, wantAll)
		}
		if len(sys.Domains[0].Sysctls) != 0 {
			t.Errorf("the top namespace gets sysctls %v", sys.Domains[0].Sysctls)
		}
	}
}

// TestMultipathHashSetting: a value other than l3 or l4 is refused with
// its position.
func TestMultipathHashSetting(t *testing.T) {
	_, err := config.Parse([]byte("settings: {multipath_hash: l5}\n"+ispConfig), "test.yaml", config.Options{})
	if err == nil || !strings.Contains(err.Error(), `test.yaml:1:28: settings.multipath_hash: "l5": the multipath hash is l3 (addresses) or l4 (addresses and ports)`) {
		t.Errorf("error %v", err)
	}
}
