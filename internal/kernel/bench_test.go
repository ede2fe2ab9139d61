package kernel

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
)

// benchRoutes is the number of routes the benchmarks install;
// TUNROUTE_BENCH_ROUTES overrides the default of 100,000.
func benchRoutes(b *testing.B) int {
	if s := os.Getenv("TUNROUTE_BENCH_ROUTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 1<<22 {
			b.Fatalf("TUNROUTE_BENCH_ROUTES=%q", s)
		}
		return n
	}
	return 100_000
}

// hostRoute returns the i-th /32 in 10.0.0.0/8 above 10.16.0.0.
func hostRoute(i int) netip.Prefix {
	v := 0x0a100000 + i
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 32)
}

func benchNS(b *testing.B, short string) string {
	ns := newNS(b, short)
	ipScript(b, ns, vethVA)
	return ns
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// BenchmarkRoutes adds N IPv4 routes to table 100 with Execute, reads them
// back (a filtered dump and a full Observe), deletes them, and does the
// same adds and deletes with `ip -batch` for comparison.
func BenchmarkRoutes(b *testing.B) {
	needRoot(b)
	n := benchRoutes(b)
	ns := benchNS(b, "bench")
	h := openT(b, ns)
	routes := make([]state.Route, n)
	adds := make([]state.Op, n)
	dels := make([]state.Op, n)
	for i := range routes {
		routes[i] = state.Route{Table: 100, Type: state.RouteUnicast, Dst: hostRoute(i), Protocol: state.Proto,
			Nexthops: []state.Nexthop{{Gateway: netip.MustParseAddr("10.1.0.254"), Dev: "va"}}}
		adds[i] = state.Op{Action: state.Add, Route: &routes[i]}
		dels[i] = state.Op{Action: state.Delete, Route: &routes[i]}
	}

	b.Run("execute", func(b *testing.B) {
		var tAdd, tDump, tObs, tDel time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := h.Execute(adds); err != nil {
				b.Fatal(err)
			}
			tAdd += time.Since(start)

			start = time.Now()
			got, err := h.ObserveRoutes(RouteFilter{Family: 4, Table: 100, Protocol: state.Proto})
			if err != nil || len(got) != n {
				b.Fatalf("ObserveRoutes: %d routes, %v", len(got), err)
			}
			tDump += time.Since(start)

			start = time.Now()
			s, err := h.Observe()
			if err != nil || len(s.Routes) < n {
				b.Fatalf("Observe: %v", err)
			}
			tObs += time.Since(start)

			start = time.Now()
			if _, err := h.Execute(dels); err != nil {
				b.Fatal(err)
			}
			tDel += time.Since(start)
		}
		total := n * b.N
		b.ReportMetric(rate(total, tAdd), "add-routes/s")
		b.ReportMetric(rate(total, tDump), "dump-routes/s")
		b.ReportMetric(rate(total, tObs), "observe-routes/s")
		b.ReportMetric(rate(total, tDel), "del-routes/s")
	})

	b.Run("ip-batch", func(b *testing.B) {
		if testing.Short() {
			b.Skip("short")
		}
		dir := b.TempDir()
		var add, del strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&add, "route add %s via 10.1.0.254 dev va table 100 proto 116\n", hostRoute(i))
			fmt.Fprintf(&del, "route del %s table 100 proto 116\n", hostRoute(i))
		}
		addFile, delFile := filepath.Join(dir, "add"), filepath.Join(dir, "del")
		os.WriteFile(addFile, []byte(add.String()), 0o600)
		os.WriteFile(delFile, []byte(del.String()), 0o600)
		var tAdd, tDump, tDel time.Duration
		for i := 0; i < b.N; i++ {
			for _, step := range []struct {
				args []string
				d    *time.Duration
			}{
				{[]string{"-batch", addFile}, &tAdd},
				{[]string{"route", "show", "table", "100", "proto", "116"}, &tDump},
				{[]string{"-batch", delFile}, &tDel},
			} {
				start := time.Now()
				cmd := exec.Command("ip", append([]string{"-n", ns}, step.args...)...)
				cmd.Stdout = nil
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("ip %v: %v: %.200s", step.args, err, out)
				}
				*step.d += time.Since(start)
			}
		}
		total := n * b.N
		b.ReportMetric(rate(total, tAdd), "add-routes/s")
		b.ReportMetric(rate(total, tDump), "dump-routes/s")
		b.ReportMetric(rate(total, tDel), "del-routes/s")
	})
}
