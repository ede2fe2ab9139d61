package engine

import (
	"reflect"
	"testing"
)

// TestHealthIsRecorded: the prober's verdict is written by the apply
// that acts on it, and every later plan (an apply by hand, a hook)
// compiles with it; recording the same verdict again changes nothing.
func TestHealthIsRecorded(t *testing.T) {
	h := newMemHost(labClient())
	e := memEngine(t, h, "../../examples/dual-identity.yaml")
	s, err := e.Observe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg, err := e.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.LoadFacts()
	if err != nil {
		t.Fatal(err)
	}
	verdict := map[string]bool{"inside": false, "outside": true}
	if err := f.RecordHealth(e, verdict); err != nil {
		t.Fatal(err)
	}
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
	if !reflect.DeepEqual(again.Health, verdict) {
		t.Fatalf("health after the apply: %v, want %v", again.Health, verdict)
	}
	if err := again.RecordHealth(e, verdict); err != nil {
		t.Fatal(err)
	}
	c2, err := s.Plan(cfg, again)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range c2.Plan.Steps {
		if st.Path != "" {
			t.Errorf("the same verdict recorded again writes %s", st.Path)
		}
	}
}
