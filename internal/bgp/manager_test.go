package bgp

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChangesBookkeeping: with nothing running every speaker starts; an
// instance recorded for this top that the config no longer has stops;
// one of another top is not this config's business. StopAll removes the
// recorded run directories of its top only.
func TestChangesBookkeeping(t *testing.T) {
	m := &Manager{RunDir: t.TempDir()}
	ss := speakers(t)
	record := func(netns, top, domain string) {
		in := &instance{Dir: filepath.Join(m.base(), dirName(netns)), Netns: netns, Top: top, Domain: domain}
		if err := os.MkdirAll(in.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(in)
		if err := os.WriteFile(in.metaFile(), b, 0o600); err != nil {
			t.Fatal(err)
		}
		// A pid file naming a process that is not this instance's BIRD
		// (this test): never taken for a running instance.
		os.WriteFile(in.path("bird.pid"), []byte("1\n"), 0o600)
	}
	record("red", "site", "red")      // in the config, not running
	record("green", "site", "green")  // gone from the config
	record("other", "elsewhere", "x") // another top's
	changes, err := m.Changes(ss, "site")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, string(c.Action)+" "+c.Netns)
	}
	if strings.Join(got, ", ") != "start red, start blue, stop green" {
		t.Errorf("changes: %v", got)
	}
	if got := changes[0].String(); got != "start the BGP speaker (BIRD) of routing domain red" {
		t.Errorf("change text: %s", got)
	}
	before, after := Split(changes)
	if len(before) != 1 || before[0].Action != ActionStop || len(after) != 2 || after[0].Action != ActionStart {
		t.Errorf("split: %v | %v", before, after)
	}
	if err := m.StopAll(context.Background(), "site"); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"red", "green"} {
		if _, err := os.Stat(filepath.Join(m.base(), ns)); !os.IsNotExist(err) {
			t.Errorf("%s's run directory left after StopAll: %v", ns, err)
		}
	}
	if _, err := os.Stat(filepath.Join(m.base(), "other", "instance.json")); err != nil {
		t.Errorf("StopAll of one top removed another's instance: %v", err)
	}
}

func TestStatusText(t *testing.T) {
	txt := StatusText([]InstanceStatus{
		{Domain: "red", Netns: "red", Running: true, PID: 42, Session: []Session{{Name: "pipe_rb", State: "up", Info: "Established", Since: "12:00:03.000",
			Learned: []LearnedRoute{{Prefix: netip.MustParsePrefix("10.2.0.0/24"), Via: netip.MustParseAddr("10.250.0.2"), Dev: "rb", ASPath: "64502i"}},
			Refused: []LearnedRoute{{Prefix: netip.MustParsePrefix("0.0.0.0/0")}}}}},
		{Domain: "host"},
	})
	want := `BGP in routing domain red: BIRD pid 42
  session pipe_rb: up, Established since 12:00:03.000; 1 learned, 1 refused
    10.2.0.0/24 via 10.250.0.2 dev rb [AS 64502i]
    refused 0.0.0.0/0
BGP in the top namespace: not running
`
	if txt != want {
		t.Errorf("got:\n%s\nwant:\n%s", txt, want)
	}
}
