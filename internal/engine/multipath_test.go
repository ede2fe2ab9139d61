package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/plan"
)

// TestMultipathHashPlan: a balance group inside a routing domain makes
// the plan set the multipath hash policy (L4) in the domain's namespace;
// one in the namespace tunroute runs in sets nothing there and the plan's
// notes say the kernel's value differs and how to set it.
func TestMultipathHashPlan(t *testing.T) {
	const yaml = `
identities:
  - {name: t1, device: tun0, gateway: none}
  - {name: w1, device: wg0, gateway: none}
groups:
  - name: both
    balance: {t1: 1, w1: 1}
routes:
  - {to: 198.51.100.0/24, via: both}
domains:
  - name: tr-mem-lb
    interfaces: [dtvpn0, dtmv0]
    identities:
      - {name: a, device: dtvpn0, gateway: none}
      - {name: b, device: dtmv0, gateway: none, address: 10.98.0.2}
    groups:
      - name: shared
        balance: {a: 3, b: 1}
    routes:
      - {to: 203.0.113.0/24, via: shared}
`
	cfg := filepath.Join(t.TempDir(), "lb.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	top := labClient()
	top.Sysctls = map[string]string{"net.ipv4.fib_multipath_hash_policy": "0", "net.ipv6.fib_multipath_hash_policy": "1"}
	h := newMemHost(top)
	s, c, err := memEngine(t, h, cfg).PlanConfig(false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var inDomain []string
	for _, st := range c.Plan.Steps {
		if st.Kind != plan.StepSysctls {
			continue
		}
		if st.Netns != "tr-mem-lb" {
			t.Errorf("sysctls set in %q: %v", st.Netns, st.Sysctls)
			continue
		}
		for k, v := range st.Sysctls {
			if strings.Contains(k, "multipath") {
				inDomain = append(inDomain, k+"="+v)
			}
		}
	}
	if len(inDomain) != 2 || !strings.Contains(c.Text(), "~ sysctl net.ipv4.fib_multipath_hash_policy = 1 in namespace tr-mem-lb") {
		t.Errorf("domain multipath sysctls %v; plan:\n%s", inDomain, c.Text())
	}
	var notes []string
	for _, n := range c.Notes {
		if strings.Contains(n, "multipath_hash_policy") {
			notes = append(notes, n)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "sysctl -w net.ipv4.fib_multipath_hash_policy=1") {
		t.Errorf("notes on the top namespace's hash: %q", notes)
	}
}
