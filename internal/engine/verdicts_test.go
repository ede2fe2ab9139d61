package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
)

// TestVerdictsAreRecorded: the verdicts' since and why survive the apply
// (status and explain read them back); recording the same booleans again
// (the daemon's RecordHealth) keeps them and writes nothing; a record of
// bare true/false, as older versions wrote it, still reads.
func TestVerdictsAreRecorded(t *testing.T) {
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
	since := time.Date(2026, 12, 2, 15, 2, 3, 0, time.UTC)
	v := map[string]compile.Verdict{"inside": {Up: false, Since: since, Why: "3 rounds in a row with fewer than 1 of 1 targets answering"},
		"outside": {Up: true, Since: since.Add(-time.Minute), Why: "first round: 1 of 1 targets answered"}}
	if err := f.RecordVerdicts(e, v); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Health, map[string]bool{"inside": false, "outside": true}) {
		t.Errorf("health: %v", f.Health)
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
	if !reflect.DeepEqual(again.Verdicts, v) {
		t.Fatalf("verdicts after the apply:\n%v\nwant\n%v", again.Verdicts, v)
	}
	if err := again.RecordHealth(e, map[string]bool{"inside": false, "outside": true}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Verdicts, v) {
		t.Errorf("the same booleans lost since and why: %v", again.Verdicts)
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

	// An older record: bare booleans.
	h.files[again.healthPath()] = []byte(`{"inside":false,"outside":true}` + "\n")
	old, err := e.LoadFacts()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(old.Health, map[string]bool{"inside": false, "outside": true}) || old.Verdicts["inside"].Up || !old.Verdicts["outside"].Up {
		t.Errorf("old record: health %v verdicts %v", old.Health, old.Verdicts)
	}
	h.files[again.healthPath()] = []byte(`{"inside":"yes"}`)
	if _, err := e.LoadFacts(); err == nil {
		t.Errorf("a record that is neither a verdict nor a boolean was read")
	}
}
