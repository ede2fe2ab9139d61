package failovertest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// TestExplainSaysWhichMember: after ISP 1 dies and the traffic moved,
// `tunroute explain` of a flow through the failover group says that isp2
// carries it and why (isp1 down since when, after how many lost rounds),
// in text and JSON, from the config's preview (-c) and live (the config
// at its default path, seen through an overlay of /etc in a private mount
// namespace: the host's /etc is not touched). A flow through no group
// gets no group line.
func TestExplainSaysWhichMember(t *testing.T) {
	buildLab(t)
	bin, err := testns.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := startDaemon(t, ctx, "300ms")
	defer func() {
		for _, c := range dropRule.heal {
			exec.Command(c[0], c[1:]...).Run()
		}
	}()
	runAll(t, dropRule.cut)
	// Wait for the verdict to be recorded by the apply that acted on it.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		f, err := d.e.LoadFacts()
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := f.Verdicts["isp1"]; ok && !v.Up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("isp1's down verdict never recorded; prober %+v", d.prober.Status())
		}
	}
	base := []string{"--netns", nsHost, "--run-dir", d.e.RunDir}
	explain := func(args ...string) string {
		t.Helper()
		return testns.Cmd(t, append(append([]string{bin, "explain"}, base...), args...)...)
	}
	wantText := []string{
		"dev eth1",
		"group: routes[0] via uplinks: failover group uplinks: isp2 carries the traffic (isp1 fails its health check); isp1 is down since ",
		"(3 rounds in a row with fewer than 1 of 1 targets answering), isp2 is healthy (up since ",
	}
	check := func(mode, out string) {
		t.Helper()
		for _, w := range wantText {
			if !strings.Contains(out, w) {
				t.Errorf("%s: explain lacks %q:\n%s", mode, w, out)
			}
		}
	}
	preview := explain("-c", d.e.ConfigPath, "198.51.100.10")
	check("-c", preview)
	t.Logf("explain -c:\n%s", preview)

	var js struct {
		Dev   string `json:"dev"`
		Group *struct {
			Name    string   `json:"name"`
			Active  []string `json:"active"`
			Uses    string   `json:"uses"`
			Members []struct {
				Name, State, Why string
				Since            time.Time
			} `json:"members"`
		} `json:"group"`
	}
	out := explain("-c", d.e.ConfigPath, "--json", "198.51.100.10")
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	switch g := js.Group; {
	case g == nil:
		t.Errorf("explain --json has no group: %s", out)
	case g.Name != "uplinks" || len(g.Active) != 1 || g.Active[0] != "isp2" || g.Uses != "routes[0] via uplinks" ||
		len(g.Members) != 2 || g.Members[0].State != "down" || g.Members[0].Since.IsZero() || g.Members[1].State != "up":
		t.Errorf("explain --json group: %+v", *g)
	}
	if js.Dev != "eth1" {
		t.Errorf("explain --json dev %q, want eth1", js.Dev)
	}
	// Not through a group (no route of the config covers it).
	if out := explain("-c", d.e.ConfigPath, "192.0.2.1"); strings.Contains(out, "group") {
		t.Errorf("a flow through no group:\n%s", out)
	}

	// Live: the config at its default path.
	etc := t.TempDir()
	for _, d := range []string{"upper/tunroute", "work"} {
		if err := os.MkdirAll(filepath.Join(etc, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(d.e.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "upper/tunroute/tunroute.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `mount -t overlay overlay -o lowerdir=/etc,upperdir=$1/upper,workdir=$1/work /etc && shift && exec "$@"`
	live := testns.Cmd(t, append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", etc, bin, "explain"},
		append(base, "198.51.100.10")...)...)
	check("live", live)
}
