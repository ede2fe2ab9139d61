package engine

import (
	"testing"

	"github.com/tunroute/tunroute/internal/config"
)

// memObserved is an engine with the config file at path on a host in
// memory (the lab client), its observed session (closed when the test
// ends), the config and the facts recorded so far.
func memObserved(t *testing.T, path string) (*memHost, *Engine, *Session, *config.Config, *Facts) {
	t.Helper()
	h := newMemHost(labClient())
	e := memEngine(t, h, path)
	s, err := e.Observe(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg, err := e.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.LoadFacts()
	if err != nil {
		t.Fatal(err)
	}
	return h, e, s, cfg, f
}

// applyAndReload plans cfg with the facts f, applies the plan and
// returns the facts read back.
func applyAndReload(t *testing.T, e *Engine, s *Session, cfg *config.Config, f *Facts) *Facts {
	t.Helper()
	c, err := s.Plan(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(c); err != nil {
		t.Fatal(err)
	}
	again, err := e.LoadFacts()
	if err != nil {
		t.Fatal(err)
	}
	return again
}

// writesNothing fails the test if the plan of cfg with f writes a file
// (what: the change that should not need one).
func writesNothing(t *testing.T, s *Session, cfg *config.Config, f *Facts, what string) {
	t.Helper()
	c, err := s.Plan(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range c.Plan.Steps {
		if st.Path != "" {
			t.Errorf("%s writes %s", what, st.Path)
		}
	}
}
