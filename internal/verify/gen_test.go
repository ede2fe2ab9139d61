package verify

import (
	"encoding/json"
	"os"
	"testing"
)

// TestLabClientSnapshot keeps testdata/lab-client.json (the fixture as a
// snapshot, for `tunroute check --state`) equal to labClient().
func TestLabClientSnapshot(t *testing.T) {
	data, err := json.MarshalIndent(labClient(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, '\n')
	if os.Getenv("TUNROUTE_UPDATE") != "" {
		if err := os.WriteFile("testdata/lab-client.json", data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, err := os.ReadFile("testdata/lab-client.json")
	if err != nil || string(old) != string(data) {
		t.Fatalf("testdata/lab-client.json is stale: TUNROUTE_UPDATE=1 go test -run LabClientSnapshot")
	}
}
