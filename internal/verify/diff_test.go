package verify

import (
	"net/netip"
	"strings"
	"testing"
)

// TestDiff: widening the kill switch's allow list changes exactly the
// fate of the packets it now lets out.
func TestDiff(t *testing.T) {
	data := readExample(t, "full-tunnel-lan.yaml")
	scenario := func(yaml string) Scenario {
		cfg := parseConfig(t, yaml)
		scs, _, err := ScenariosOf(Input{Config: cfg, Observed: labClient()})
		if err != nil {
			t.Fatal(err)
		}
		return scs[0]
	}
	old := scenario(data)
	same, _, err := Diff(old, scenario(data))
	if err != nil || len(same) != 0 {
		t.Fatalf("a config against itself: %d changes, %v", len(same), err)
	}
	wider := strings.Replace(data, "- to: [10.1.0.0/24, 192.168.0.0/16]", "- to: [10.1.0.0/24, 192.168.0.0/16, 198.51.100.0/24]", 1)
	if wider == data {
		t.Fatal("the example changed: update the test")
	}
	changes, cells, err := Diff(old, scenario(wider))
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 {
		t.Fatalf("no change in %d cells", cells)
	}
	doc := netip.MustParsePrefix("198.51.100.0/24")
	for _, ch := range changes {
		t.Logf("%s -> %s: %s (%s)", ch.Old, ch.New, ch.Packet, ch.Where)
		if !doc.Contains(ch.Example.Dst) {
			t.Errorf("a packet to %s changed fate: %s -> %s", ch.Example.Dst, ch.Old, ch.New)
		}
		if !strings.Contains(ch.Old, "dropped") || !strings.Contains(ch.New, "in clear") {
			t.Errorf("change %s -> %s", ch.Old, ch.New)
		}
	}
}
