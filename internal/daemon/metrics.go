package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tunroute/tunroute/internal/health"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// The daemon's Prometheus endpoint (`tunroute run --metrics ADDR`),
// written in the text exposition format (version 0.0.4) with the
// standard library: a dozen families do not need a client library (and
// its protobuf dependencies in a routing tool's binary), and one GET
// does not need net/http either (metrics_http.go; net/http alone made
// the binary 3.5 MB, 25%, larger).

// latencyBucketsMS are the upper bounds of the repair latency histogram,
// in milliseconds (the drift goal is p99 < 20 ms; Tailscale waits 250 ms).
var latencyBucketsMS = [...]float64{1, 2, 5, 10, 20, 50, 100, 250, 500, 1000}

// Metrics collects what Status does not hold: the repair latency
// histogram and the failed repairs. The daemon feeds it from check(); the
// zero value is ready.
type Metrics struct {
	mu       sync.Mutex
	buckets  [len(latencyBucketsMS) + 1]uint64 // per bucket, not cumulative; the last is +Inf
	sum      time.Duration
	count    uint64
	failures uint64
}

// observe counts one repair (not the first apply). Only repairs started
// by an event have a latency (a repair retried after back-off has none).
func (m *Metrics) observe(r Repair) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Err != nil {
		m.failures++
		return
	}
	if r.Cause.At.IsZero() {
		return
	}
	ms := float64(r.Latency) / float64(time.Millisecond)
	i := sort.SearchFloat64s(latencyBucketsMS[:], ms) // first bound >= ms
	m.buckets[i]++
	m.sum += r.Latency
	m.count++
}

// metricsSnapshot is a copy of Metrics for one scrape.
type metricsSnapshot struct {
	buckets  [len(latencyBucketsMS) + 1]uint64
	sum      time.Duration
	count    uint64
	failures uint64
}

func (m *Metrics) snapshot() metricsSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return metricsSnapshot{buckets: m.buckets, sum: m.sum, count: m.count, failures: m.failures}
}

// firewallCounters is what the scrape read of tunroute's nftables table.
type firewallCounters struct {
	present bool
	// drops sums the counters of the dropping rules by chain and reason
	// (the rule's comment): the same reason in IPv4 and IPv6 rules is one
	// series.
	drops map[[2]string]state.FwRule
	err   error
}

func countersOf(fw *state.Firewall, err error) firewallCounters {
	fc := firewallCounters{present: fw != nil, drops: map[[2]string]state.FwRule{}, err: err}
	if fw == nil {
		return fc
	}
	for _, c := range fw.Chains {
		for _, r := range c.Rules {
			if !r.Counter || r.Verdict != "drop" {
				continue
			}
			k := [2]string{c.Name, r.Comment}
			sum := fc.drops[k]
			sum.Packets += r.Packets
			sum.Bytes += r.Bytes
			fc.drops[k] = sum
		}
	}
	return fc
}

// writeMetrics writes every family in the text exposition format.
func writeMetrics(out io.Writer, st Status, m metricsSnapshot, fc firewallCounters) error {
	w := bufio.NewWriter(out)
	family := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	sample := func(name string, labels []string, v float64) {
		w.WriteString(name)
		if len(labels) > 0 {
			w.WriteByte('{')
			for i := 0; i < len(labels); i += 2 {
				if i > 0 {
					w.WriteByte(',')
				}
				fmt.Fprintf(w, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
			}
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		w.WriteByte('\n')
	}
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	family("tunroute_daemon_start_time_seconds", "gauge", "When the daemon started (Unix time).")
	sample("tunroute_daemon_start_time_seconds", nil, float64(st.Started.UnixNano())/1e9)
	family("tunroute_daemon_events_total", "counter", "Kernel events read (links, addresses, routes, rules, nexthops, nftables).")
	sample("tunroute_daemon_events_total", nil, float64(st.Events))
	family("tunroute_daemon_relevant_events_total", "counter", "Events that could matter to the config (the others start no read of the system).")
	sample("tunroute_daemon_relevant_events_total", nil, float64(st.Relevant))
	family("tunroute_daemon_resyncs_total", "counter", "Complete reads of the system after the kernel dropped events (ENOBUFS).")
	sample("tunroute_daemon_resyncs_total", nil, float64(st.Resyncs))
	family("tunroute_daemon_checks_total", "counter", "Reads of the system followed by a plan.")
	sample("tunroute_daemon_checks_total", nil, float64(st.Checks))
	family("tunroute_daemon_hooks_total", "counter", "VPN hook calls (tunroute hook) handed to the daemon over its control socket.")
	sample("tunroute_daemon_hooks_total", nil, float64(st.Hooks))
	family("tunroute_daemon_repairs_total", "counter", "Objects of tunroute's put back after another program deleted or changed them, by kind.")
	kinds := make([]string, 0, len(st.Repairs))
	for k := range st.Repairs {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		sample("tunroute_daemon_repairs_total", []string{"kind", k}, float64(st.Repairs[k]))
	}
	family("tunroute_daemon_repair_failures_total", "counter", "Repairs whose apply failed (nothing was changed; retried).")
	sample("tunroute_daemon_repair_failures_total", nil, float64(m.failures))
	family("tunroute_daemon_repair_latency_seconds", "histogram", "From reading the event of a drift to the kernel's acknowledgement of its repair.")
	var cum uint64
	for i, le := range latencyBucketsMS {
		cum += m.buckets[i]
		sample("tunroute_daemon_repair_latency_seconds_bucket", []string{"le", strconv.FormatFloat(le/1000, 'g', -1, 64)}, float64(cum))
	}
	cum += m.buckets[len(latencyBucketsMS)]
	sample("tunroute_daemon_repair_latency_seconds_bucket", []string{"le", "+Inf"}, float64(cum))
	sample("tunroute_daemon_repair_latency_seconds_sum", nil, m.sum.Seconds())
	sample("tunroute_daemon_repair_latency_seconds_count", nil, float64(m.count))
	family("tunroute_daemon_in_sync", "gauge", "1 if the last plan was empty or its apply succeeded, 0 while the kernel differs from the config.")
	sample("tunroute_daemon_in_sync", nil, boolean(st.InSync))
	family("tunroute_daemon_fights", "gauge", "Objects another program keeps undoing, repaired with back-off.")
	sample("tunroute_daemon_fights", nil, float64(len(st.Fights)))

	family("tunroute_killswitch_table_present", "gauge", "1 if tunroute's nftables table (inet tunroute) exists, 0 if it is gone (e.g. nft flush ruleset, until the repair).")
	sample("tunroute_killswitch_table_present", nil, boolean(fc.present))
	if fc.err != nil {
		fmt.Fprintf(w, "# reading tunroute's nftables table: %s\n", strings.ReplaceAll(fc.err.Error(), "\n", " "))
	}
	keys := make([][2]string, 0, len(fc.drops))
	for k := range fc.drops {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	family("tunroute_killswitch_dropped_packets_total", "counter", "Packets dropped by the kill switch and tunroute's other firewall rules, by chain and reason (the rule's comment); starts again at 0 when the table is rebuilt.")
	for _, k := range keys {
		sample("tunroute_killswitch_dropped_packets_total", []string{"chain", k[0], "reason", k[1]}, float64(fc.drops[k].Packets))
	}
	family("tunroute_killswitch_dropped_bytes_total", "counter", "Bytes of those packets.")
	for _, k := range keys {
		sample("tunroute_killswitch_dropped_bytes_total", []string{"chain", k[0], "reason", k[1]}, float64(fc.drops[k].Bytes))
	}

	family("tunroute_health_state", "gauge", "Each health-checked identity's state: 1 for the state it is in (unknown, up, down).")
	for _, h := range st.Health {
		for _, s := range []health.State{health.Unknown, health.Up, health.Down} {
			sample("tunroute_health_state", []string{"identity", h.Identity, "state", s.String()}, boolean(h.State == s.String()))
		}
	}
	family("tunroute_health_suppressed", "gauge", "1 if a flapping identity is held down (flap damping).")
	for _, h := range st.Health {
		sample("tunroute_health_suppressed", []string{"identity", h.Identity}, boolean(h.Suppressed))
	}
	family("tunroute_health_state_changes_total", "counter", "State changes of each health-checked identity.")
	for _, h := range st.Health {
		sample("tunroute_health_state_changes_total", []string{"identity", h.Identity}, float64(h.Changes))
	}
	family("tunroute_health_target_rtt_seconds", "gauge", "Round-trip time of a target's last answer (0 if its last probe got none).")
	for _, h := range st.Health {
		for _, t := range h.Targets {
			sample("tunroute_health_target_rtt_seconds", []string{"identity", h.Identity, "target", t.Target.String()}, t.RTT.Seconds())
		}
	}
	family("tunroute_health_target_loss_ratio", "gauge", "Share of a target's last rounds (up to 20) without an answer.")
	for _, h := range st.Health {
		for _, t := range h.Targets {
			sample("tunroute_health_target_loss_ratio", []string{"identity", h.Identity, "target", t.Target.String()}, t.Loss)
		}
	}
	return w.Flush()
}

// escapeLabel escapes a label value for the text format.
func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// writeMetricsNow writes one scrape: the daemon's figures, and the
// counters of tunroute's nftables table read now.
func (d *Daemon) writeMetricsNow(w io.Writer) error {
	st := d.Status()
	fw, err := readFirewall(d.e.Netns)
	return writeMetrics(w, st, d.metrics.snapshot(), countersOf(fw, err))
}

func readFirewall(netns string) (*state.Firewall, error) {
	h, err := kernel.Open(netns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.ObserveFirewall()
}

// ParseMetricsAddr checks the address of --metrics: HOST:PORT with HOST
// an IP address (brackets for IPv6) or empty (every address), and a port.
func ParseMetricsAddr(s string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("--metrics %q: %s (want ADDRESS:PORT, e.g. 127.0.0.1:9712 or [::1]:9712)", s, why)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return bad(ae.Err)
		}
		return bad(err.Error())
	}
	if host != "" {
		_, err := netip.ParseAddr(host)
		if err != nil {
			return bad(fmt.Sprintf("%q is not an IP address", host))
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return bad(fmt.Sprintf("%q is not a port (1-65535)", port))
	}
	return net.JoinHostPort(host, port), nil
}

// ServeMetrics listens on addr (checked with ParseMetricsAddr) and serves
// the daemon's metrics until ctx ends. The listener is open when it
// returns: a port in use is an error before the daemon applies anything.
func (d *Daemon) ServeMetrics(ctx context.Context, addr string) (net.Addr, error) {
	addr, err := ParseMetricsAddr(addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go d.serveMetrics(l)
	return l.Addr(), nil
}
