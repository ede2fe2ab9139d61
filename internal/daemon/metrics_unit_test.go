package daemon

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/health"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// sampleLine is one sample of the text exposition format: a metric
// name, optional labels with quoted (escaped) values, a value.
var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",)*([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")?\})? (\+Inf|-Inf|NaN|[-+0-9.eE]+)$`)

func TestMetricsText(t *testing.T) {
	var m Metrics
	cause := kernel.WatchEvent{Kind: kernel.WatchRule, At: time.Unix(100, 0)}
	for _, lat := range []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 20 * time.Millisecond, 21 * time.Millisecond, 2 * time.Second} {
		m.observe(Repair{Cause: cause, Latency: lat})
	}
	m.observe(Repair{Latency: 0})                                    // after back-off: no event, no latency
	m.observe(Repair{Cause: cause, Err: errors.New("apply failed")}) // a failure
	st := Status{
		Started: time.Unix(1700000000, 500000000), Events: 42, Relevant: 7, Resyncs: 1, Checks: 9, Hooks: 5,
		Repairs: map[string]int{"rule": 3, "firewall": 2}, InSync: true, Fights: []string{"top: rule pref 5000"},
		Health: []health.Status{{Identity: `vpn"a`, State: "down", Changes: 4, Targets: []health.TargetStatus{
			{Target: config.HealthTarget{Kind: config.ProbeICMP, Addr: netip.MustParseAddr("192.0.2.9")}, RTT: 12500 * time.Microsecond, Loss: 0.25},
		}}},
	}
	fw := &state.Firewall{Chains: []state.Chain{
		{Name: "output", Rules: []state.FwRule{
			{Comment: "counted accept", Counter: true, Verdict: "accept", Packets: 99},
			{Comment: "kill switch: not in a tunnel, not allowed in clear", Family: 4, Counter: true, Verdict: "drop", Packets: 5, Bytes: 420},
			{Comment: "kill switch: not in a tunnel, not allowed in clear", Family: 6, Counter: true, Verdict: "drop", Packets: 2, Bytes: 200},
			{Comment: "no counter", Verdict: "drop"},
		}},
		{Name: "input", Rules: []state.FwRule{{Comment: "pipe p: undeclared flow from d1\\x", Counter: true, Verdict: "drop", Packets: 1, Bytes: 60}}},
	}}
	var b strings.Builder
	if err := writeMetrics(&b, st, m.snapshot(), countersOf(fw, nil)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	typed := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			if typed[name] != "" {
				t.Errorf("line %d: %s typed twice", i+1, name)
			}
			typed[name] = typ
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		if !sampleLine.MatchString(line) {
			t.Errorf("line %d is not a sample: %q", i+1, line)
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if typed[name] == "" && typed[base] != "histogram" {
			t.Errorf("line %d: %s has no TYPE before it", i+1, name)
		}
	}
	for _, want := range []string{
		"tunroute_daemon_start_time_seconds 1.7000000005e+09\n",
		"tunroute_daemon_events_total 42\n",
		"tunroute_daemon_relevant_events_total 7\n",
		"tunroute_daemon_resyncs_total 1\n",
		"tunroute_daemon_checks_total 9\n",
		"tunroute_daemon_hooks_total 5\n",
		"tunroute_daemon_repairs_total{kind=\"firewall\"} 2\ntunroute_daemon_repairs_total{kind=\"rule\"} 3\n",
		"tunroute_daemon_repair_failures_total 1\n",
		// 0.5 ms | 3 ms | 20 ms (on the bound: in it) | 21 ms | 2 s (only +Inf)
		"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.001\"} 1\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.002\"} 1\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.005\"} 2\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.01\"} 2\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.02\"} 3\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.05\"} 4\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.1\"} 4\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.25\"} 4\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"0.5\"} 4\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"1\"} 4\n" +
			"tunroute_daemon_repair_latency_seconds_bucket{le=\"+Inf\"} 5\n" +
			"tunroute_daemon_repair_latency_seconds_sum 2.0445\n" +
			"tunroute_daemon_repair_latency_seconds_count 5\n",
		"tunroute_daemon_in_sync 1\n",
		"tunroute_daemon_fights 1\n",
		"tunroute_killswitch_table_present 1\n",
		"tunroute_killswitch_dropped_packets_total{chain=\"input\",reason=\"pipe p: undeclared flow from d1\\\\x\"} 1\n" +
			"tunroute_killswitch_dropped_packets_total{chain=\"output\",reason=\"kill switch: not in a tunnel, not allowed in clear\"} 7\n",
		"tunroute_killswitch_dropped_bytes_total{chain=\"output\",reason=\"kill switch: not in a tunnel, not allowed in clear\"} 620\n",
		"tunroute_health_state{identity=\"vpn\\\"a\",state=\"unknown\"} 0\ntunroute_health_state{identity=\"vpn\\\"a\",state=\"up\"} 0\ntunroute_health_state{identity=\"vpn\\\"a\",state=\"down\"} 1\n",
		"tunroute_health_suppressed{identity=\"vpn\\\"a\"} 0\n",
		"tunroute_health_state_changes_total{identity=\"vpn\\\"a\"} 4\n",
		"tunroute_health_target_rtt_seconds{identity=\"vpn\\\"a\",target=\"icmp 192.0.2.9\"} 0.0125\n",
		"tunroute_health_target_loss_ratio{identity=\"vpn\\\"a\",target=\"icmp 192.0.2.9\"} 0.25\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing:\n%s", want)
		}
	}
	for _, never := range []string{"counted accept", "no counter"} {
		if strings.Contains(out, never) {
			t.Errorf("%q is not a dropping counter, but is in the output", never)
		}
	}

	// The table gone (a flush, before the repair): said, and no series.
	b.Reset()
	writeMetrics(&b, Status{}, metricsSnapshot{}, countersOf(nil, nil))
	if !strings.Contains(b.String(), "tunroute_killswitch_table_present 0\n") || strings.Contains(b.String(), "tunroute_killswitch_dropped_packets_total{") {
		t.Errorf("without the table:\n%s", b.String())
	}
}

func TestParseMetricsAddr(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"127.0.0.1:9712", "127.0.0.1:9712", ""},
		{"[::1]:9712", "[::1]:9712", ""},
		{":9712", ":9712", ""},
		{"9712", "", `--metrics "9712": missing port in address`},
		{"::1:9712", "", `--metrics "::1:9712": too many colons in address`},
		{"localhost:9712", "", `"localhost" is not an IP address`},
		{"10.0.0.300:80", "", `"10.0.0.300" is not an IP address`},
		{"127.0.0.1:http", "", `"http" is not a port`},
		{"127.0.0.1:0", "", `"0" is not a port`},
		{"127.0.0.1:65536", "", `"65536" is not a port`},
	} {
		got, err := ParseMetricsAddr(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%q: %q, %v; want %q", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "e.g. 127.0.0.1:9712")):
			t.Errorf("%q: error %v, want one with %q and an example", c.in, err, c.err)
		}
	}
}

// TestAnswerScrape: the endpoint's small HTTP, as a scraper, curl and a
// port scanner talk to it.
func TestAnswerScrape(t *testing.T) {
	body := func(w io.Writer) error { _, err := io.WriteString(w, "tunroute_daemon_in_sync 1\n"); return err }
	for _, c := range []struct {
		name, req string
		want      []string
		wantErr   bool
	}{
		{"scrape", "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", "Content-Length: 26\r\n", "Connection: close\r\n\r\ntunroute_daemon_in_sync 1\n"}, false},
		{"query string", "GET /metrics?x=1 HTTP/1.0\n\n", []string{"200 OK", "\r\n\r\ntunroute_daemon_in_sync 1\n"}, false},
		{"head", "HEAD /metrics HTTP/1.1\r\n\r\n", []string{"200 OK", "Content-Length: 26\r\n"}, false},
		{"elsewhere", "GET / HTTP/1.1\r\n\r\n", []string{"404 Not Found", "at /metrics"}, false},
		{"post", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", []string{"405 Method Not Allowed", "Allow: GET, HEAD\r\n"}, false},
		{"not http", "SSH-2.0-OpenSSH_9.6\r\n", []string{"400 Bad Request"}, true},
		{"cut short", "GET /metrics HTTP/1.1\r\nHost: x\r\n", []string{"400 Bad Request"}, true},
		{"endless header", "GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n", []string{"400 Bad Request"}, true},
	} {
		var out bytes.Buffer
		err := answerScrape(strings.NewReader(c.req), &out, body)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: error %v", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: answer %q lacks %q", c.name, out.String(), w)
			}
		}
		if c.name == "head" && strings.Contains(out.String(), "in_sync") {
			t.Errorf("head: a body: %q", out.String())
		}
	}
}
