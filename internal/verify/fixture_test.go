package verify

import (
	"testing"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/statetest"
)

var labClient = statetest.LabClient

var testTables = map[string]uint32{"main": 254, "local": 255, "default": 253, "from.this.host": 2}

// parseConfig reads a test config (with the tests' table names).
func parseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: testTables})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// evaluatorFor compiles cfg against obs with the VPNs' facts and returns
// the packet evaluator of the state apply would leave.
func evaluatorFor(t testing.TB, cfg *config.Config, obs *state.State, fs map[string]*facts.VPN) *evaluator {
	t.Helper()
	res, err := compile.Compile(cfg, obs, fs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEvaluator(plan.Preview(res.State, obs), TunnelDevices(cfg, res))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// compiled is the state yaml would leave in obs (nil: the lab client).
func compiled(t testing.TB, yaml string, obs *state.State) (*config.Config, *compile.Result, *state.State) {
	t.Helper()
	cfg := parseConfig(t, yaml)
	if obs == nil {
		obs = labClient()
	}
	res, err := compile.Compile(cfg, obs, nil)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return cfg, res, plan.Preview(res.State, obs)
}
