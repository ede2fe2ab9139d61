package verify

import (
	"errors"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
)

// TestGate is what apply --check runs: nil for a config whose
// properties hold, a GateError naming the broken ones otherwise.
func TestGate(t *testing.T) {
	parse := func(yaml string) *config.Config {
		cfg := parseConfig(t, yaml)
		return cfg
	}
	obs, fs := workFacts()
	good := parse(openvpnBase + "redirect: {via: inside}\nkillswitch:\n  allow: [{to: 10.1.0.0/24}]\n")
	if err := Gate(Input{Config: good, Observed: obs, Facts: fs}); err != nil {
		t.Errorf("good config: %v", err)
	}
	obs, fs = workFacts()
	bad := parse(openvpnBase + "redirect: {via: inside}\nkillswitch:\n  allow: [{to: 0.0.0.0/0}]\n")
	err := Gate(Input{Config: bad, Observed: obs, Facts: fs})
	var ge *GateError
	if !errors.As(err, &ge) || ge.Broken != 1 {
		t.Fatalf("wide allow: %v", err)
	}
	for _, want := range []string{"check: 1 property broken, nothing applied:",
		"what goes through a tunnel never falls back to clear when tunnels go down (built-in): work down: ICMP echo from (unbound) to 1.0.0.1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
