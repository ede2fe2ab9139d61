package daemon

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveMetricsLocally serves d's metrics on a loopback port until the
// test ends and returns the base URL.
func serveMetricsLocally(t *testing.T, d *Daemon) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go d.serveMetrics(l)
	return "http://" + l.Addr().String()
}

// scrape reads /metrics and returns each sample's value by its line's
// name and labels (as written).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

const killSwitchDrops = `tunroute_killswitch_dropped_packets_total{chain="killswitch_postrouting",reason="kill switch: not in a tunnel, not allowed in clear"}`

// TestMetricsScrape: the endpoint of a running daemon, scraped before
// and after drifts: the repair counters, the latency histogram and the
// event counts move, the kill switch's drop counter counts packets the
// kill switch dropped, and the table's absence is visible.
func TestMetricsScrape(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash (its /dev/udp sends the packets the kill switch drops)")
	}
	w := newWorld(t, "mt")
	d, reps := w.daemonRun(Options{Log: testLog(t)})
	url := serveMetricsLocally(t, d)

	before := scrape(t, url)
	for _, name := range []string{"tunroute_daemon_in_sync", "tunroute_killswitch_table_present"} {
		if before[name] != 1 {
			t.Errorf("%s = %v, want 1", name, before[name])
		}
	}
	if _, ok := before[killSwitchDrops]; !ok {
		t.Fatalf("no kill switch drop counter in %v", before)
	}

	// Clear packets the kill switch drops (nothing here is a tunnel).
	w.sh("ip netns exec " + w.top + ` bash -c 'for i in 1 2 3 4 5; do echo x >/dev/udp/203.0.113.9/9 || true; done' 2>/dev/null || true`)
	if mid := scrape(t, url); mid[killSwitchDrops] < before[killSwitchDrops]+5 {
		t.Errorf("5 packets in clear sent: kill switch drops %v -> %v", before[killSwitchDrops], mid[killSwitchDrops])
	}
	drain(reps)
	w.sh("ip -n " + w.top + " rule del pref 5000 from 192.0.2.2")
	waitRepair(t, reps, "rule")
	unheld(t, d, reps, "ip netns exec "+w.top+" nft delete table inet tunroute")

	after := scrape(t, url)
	t.Logf("before -> after:")
	for _, name := range []string{
		`tunroute_daemon_repairs_total{kind="rule"}`, `tunroute_daemon_repairs_total{kind="firewall"}`,
		"tunroute_daemon_repair_latency_seconds_count", `tunroute_daemon_repair_latency_seconds_bucket{le="+Inf"}`,
		"tunroute_daemon_events_total", "tunroute_daemon_relevant_events_total", "tunroute_daemon_checks_total",
	} {
		t.Logf("  %s: %v -> %v", name, before[name], after[name])
		if after[name] <= before[name] {
			t.Errorf("%s did not move: %v -> %v", name, before[name], after[name])
		}
	}
	if after["tunroute_daemon_repair_latency_seconds_count"]-before["tunroute_daemon_repair_latency_seconds_count"] < 2 ||
		after["tunroute_daemon_repair_latency_seconds_sum"] <= before["tunroute_daemon_repair_latency_seconds_sum"] {
		t.Errorf("latency histogram: count %v -> %v, sum %v -> %v", before["tunroute_daemon_repair_latency_seconds_count"],
			after["tunroute_daemon_repair_latency_seconds_count"], before["tunroute_daemon_repair_latency_seconds_sum"], after["tunroute_daemon_repair_latency_seconds_sum"])
	}
	// The table was rebuilt: its counters started again, so the packets
	// are counted before the deletion; send again and see them.
	w.sh("ip netns exec " + w.top + ` bash -c 'for i in 1 2 3; do echo x >/dev/udp/203.0.113.9/9 || true; done' 2>/dev/null || true`)
	deadline := time.Now().Add(3 * time.Second)
	for {
		now := scrape(t, url)
		if now[killSwitchDrops] >= 3 && now["tunroute_daemon_in_sync"] == 1 {
			t.Logf("  kill switch drops after the rebuild: %v", now[killSwitchDrops])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kill switch drops: %v, in sync %v", now[killSwitchDrops], now["tunroute_daemon_in_sync"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsFlagRefused: `tunroute run --metrics` with a bad address
// stops with an error naming the flag, before applying anything.
func TestMetricsFlagRefused(t *testing.T) {
	w := newWorld(t, "mf")
	for _, addr := range []string{"9712", "localhost:9712", "127.0.0.1:99999"} {
		cmd := exec.Command(binary(t), "--run-dir", w.runDir, "run", "--netns", w.top, "-c", w.cfgPath, "--metrics", addr)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `--metrics "`+addr+`"`) || !strings.Contains(string(out), "127.0.0.1:9712") {
			t.Errorf("--metrics %s: %v\n%s", addr, err, out)
		}
		if ruleset, _ := exec.Command("ip", "netns", "exec", w.top, "nft", "list", "ruleset").CombinedOutput(); len(strings.TrimSpace(string(ruleset))) != 0 {
			t.Fatalf("--metrics %s: something was applied:\n%s", addr, ruleset)
		}
		if _, err := os.Stat("/run/netns/" + w.d1); err == nil {
			t.Fatalf("--metrics %s: the domain %s was made", addr, w.d1)
		}
	}
}

// TestMetricsHealth: a health-checked identity's state, its targets' RTT
// and loss, as the daemon's prober measures them, on the endpoint: the
// peer answers ICMP echo, and its TCP port 9 refuses.
func TestMetricsHealth(t *testing.T) {
	w := newWorld(t, "mh")
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	withHealth := strings.Replace(string(cfg), "    priority: 5000\n", "    priority: 5000\n"+
		"    health: {targets: [icmp 192.0.2.1, tcp 192.0.2.1:9], interval: 100ms, timeout: 100ms, up: 2, down: 2}\n", 1)
	if withHealth == string(cfg) {
		t.Fatal("the test config has changed: no place for the health check")
	}
	if err := os.WriteFile(w.cfgPath, []byte(withHealth), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := w.daemonRun(Options{Log: testLog(t)})
	url := serveMetricsLocally(t, d)
	const (
		up      = `tunroute_health_state{identity="up",state="up"}`
		changes = `tunroute_health_state_changes_total{identity="up"}`
		rtt     = `tunroute_health_target_rtt_seconds{identity="up",target="icmp 192.0.2.1"}`
		lossTCP = `tunroute_health_target_loss_ratio{identity="up",target="tcp 192.0.2.1:9"}`
		lossICM = `tunroute_health_target_loss_ratio{identity="up",target="icmp 192.0.2.1"}`
	)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, url)
		if m[up] == 1 && m[changes] >= 1 && m[rtt] > 0 && m[lossTCP] == 1 && m[lossICM] == 0 {
			t.Logf("%s %v, %s %v, %s %v, %s %v", up, m[up], changes, m[changes], rtt, m[rtt], lossTCP, m[lossTCP])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health metrics: %s %v, %s %v, %s %v, %s %v, %s %v", up, m[up], changes, m[changes], rtt, m[rtt], lossTCP, m[lossTCP], lossICM, m[lossICM])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
