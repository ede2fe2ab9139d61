package compile

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// TestDescribeGroups: a group's line says which member carries the
// traffic, why, and each member's recorded health with since when and
// what made it change; the same words in JSON.
func TestDescribeGroups(t *testing.T) {
	cfg, err := config.Parse([]byte(ispConfig), "test.yaml", config.Options{TableNames: map[string]uint32{"main": 254}})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 12, 2, 15, 2, 3, 0, time.UTC)
	verdicts := map[string]Verdict{
		"isp1": {Up: false, Since: since, Why: "3 rounds in a row with fewer than 1 of 2 targets answering"},
		"isp2": {Up: true, Since: since.Add(-time.Hour), Why: "first round: 1 of 1 targets answered"},
	}
	res, err := CompileHealth(cfg, twoISPs(), nil, Health{"isp1": false, "isp2": true})
	if err != nil {
		t.Fatal(err)
	}
	views := DescribeGroups(cfg, res.Groups, verdicts)
	want := []string{
		"failover group uplinks: isp2 carries the traffic (isp1 fails its health check); " +
			"isp1 is down since 2026-12-02 15:02:03 UTC (3 rounds in a row with fewer than 1 of 2 targets answering), " +
			"isp2 is healthy (up since 2026-12-02 14:02:03 UTC)",
		"balance group shared: isp2 carries the traffic (healthy members share the load by weight); " +
			"isp1 is down since 2026-12-02 15:02:03 UTC (3 rounds in a row with fewer than 1 of 2 targets answering), " +
			"isp2 is healthy (up since 2026-12-02 14:02:03 UTC)",
	}
	if len(views) != len(want) {
		t.Fatalf("%d views, want %d", len(views), len(want))
	}
	for i := range want {
		if got := views[i].Text(); got != want[i] {
			t.Errorf("view %d:\ngot  %s\nwant %s", i, got, want[i])
		}
	}
	data, err := json.Marshal(views[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"active":["isp2"]`, `"name":"isp1","state":"down","since":"2026-12-02T15:02:03Z"`, `"why":"3 rounds in a row`} {
		if !strings.Contains(string(data), w) {
			t.Errorf("JSON lacks %s: %s", w, data)
		}
	}
	// Both healthy: the balance group's members share it.
	both, err := CompileHealth(cfg, twoISPs(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := DescribeGroups(cfg, both.Groups, nil)[1].Text(); !strings.HasPrefix(got, "balance group shared: isp1 and isp2 carry the traffic (healthy members share the load by weight); ") {
		t.Errorf("balance over both: %s", got)
	}
	// Without a recorded verdict: judged by nobody yet.
	none := DescribeGroups(cfg, res.Groups, nil)
	if got := none[0].Text(); !strings.HasSuffix(got, "isp1 is not judged yet (counts as healthy), isp2 is not judged yet (counts as healthy)") {
		t.Errorf("without verdicts: %s", got)
	}
}

// TestUsedGroup: a flow goes through a group when its lookup used a
// route a route entry or the redirect made through the group, or matched
// a selector's rule into it; a route of the same table to another prefix,
// or of another table, does not.
func TestUsedGroup(t *testing.T) {
	yaml := ispConfig + `
redirect:
  via: uplinks
  servers: [192.0.2.200]
`
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{TableNames: map[string]uint32{"main": 254}})
	if err != nil {
		t.Fatal(err)
	}
	uses := GroupUses(cfg)
	p := netip.MustParsePrefix
	cases := []struct {
		hasRule     bool
		rule, table uint32
		dst         string
		want        string
	}{
		{false, 0, state.TableMain, "198.51.100.0/24", "routes[0] via uplinks"},
		{false, 0, state.TableMain, "192.0.2.0/24", "routes[1] via shared"},
		{true, 32766, state.TableMain, "128.0.0.0/1", "the gateway redirect via uplinks"},
		{true, 32766, state.TableMain, "8000::/1", "the gateway redirect via uplinks"},
		{true, 4000, 1002, "0.0.0.0/0", "select[0] via shared"},
		{true, 32766, state.TableMain, "0.0.0.0/0", ""},
		{false, 0, 1001, "198.51.100.0/24", ""},
		{true, 4001, 1002, "0.0.0.0/0", ""},
	}
	for _, c := range cases {
		u, ok := UsedGroup(uses, c.hasRule, c.rule, c.table, p(c.dst))
		if c.want == "" {
			if ok {
				t.Errorf("%+v: through %s, want no group", c, u.What)
			}
			continue
		}
		if !ok || u.What != c.want {
			t.Errorf("%+v: %q %v, want %q", c, u.What, ok, c.want)
		}
	}
}
