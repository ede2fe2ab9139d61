package verify

import (
	"os"
	"testing"
)

func TestSmokePartition(t *testing.T) {
	data, _ := os.ReadFile("../../examples/full-tunnel-lan.yaml")
	_, _, st := compiled(t, string(data), nil)
	cls, cells, err := Partition(Scenario{State: st, Tunnels: []string{"wg0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d cells", cells)
	for _, c := range cls {
		t.Logf("%-60s %5d  %s | %s", c.Fate, c.Cells, c.Example.String(), c.Where)
	}
}
