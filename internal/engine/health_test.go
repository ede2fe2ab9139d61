package engine

import (
	"reflect"
	"testing"
)

// TestHealthIsRecorded: the prober's verdict is written by the apply
// that acts on it, and every later plan (an apply by hand, a hook)
// compiles with it; recording the same verdict again changes nothing.
func TestHealthIsRecorded(t *testing.T) {
	_, e, s, cfg, f := memObserved(t, "../../examples/dual-identity.yaml")
	verdict := map[string]bool{"inside": false, "outside": true}
	if err := f.RecordHealth(e, verdict); err != nil {
		t.Fatal(err)
	}
	again := applyAndReload(t, e, s, cfg, f)
	if !reflect.DeepEqual(again.Health, verdict) {
		t.Fatalf("health after the apply: %v, want %v", again.Health, verdict)
	}
	if err := again.RecordHealth(e, verdict); err != nil {
		t.Fatal(err)
	}
	writesNothing(t, s, cfg, again, "the same verdict recorded again")
}
