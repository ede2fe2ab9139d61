package daemon

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// BenchmarkRepairLatency undoes one object of tunroute's per iteration
// and reports the repair latency (from reading the kernel's event to the
// kernel's acknowledgement of the repair) as p50 and p99, per kind of
// drift. Fight back-off is off: the benchmark undoes the same object on
// purpose.
//
//	go test ./internal/daemon -run '^$' -bench RepairLatency -benchtime 100x
func BenchmarkRepairLatency(b *testing.B) {
	w := newWorld(b, "bn")
	d, reps := w.daemonRun(Options{FightAfter: 1 << 30, Log: testLog(b)})
	summary := map[string]string{}
	for _, dr := range drifts(w) {
		b.Run(dr.name, func(b *testing.B) {
			var lat []time.Duration
			for i := 0; i < b.N; i++ {
				time.Sleep(30 * time.Millisecond) // let the last repair's echo pass
				drain(reps)
				if dr.kind == "firewall" && d.FirewallHeld() {
					// A held kill switch cannot be flushed or deleted:
					// the repair is measured with the hold let go.
					lat = append(lat, unheld(b, d, reps, dr.cmd).Latency)
					continue
				}
				w.sh(dr.cmd)
				lat = append(lat, waitRepair(b, reps, dr.kind).Latency)
			}
			slices.Sort(lat)
			p50, p99 := pct(lat, 50), pct(lat, 99)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(0, "ns/op")
			summary[dr.name] = (fmt.Sprintf("%-40s n=%-4d p50 %7.2f ms  p99 %7.2f ms", dr.name, len(lat), ms(p50), ms(p99)))
		})
	}
	for _, dr := range drifts(w) { // the last run of each (b.N grows)
		if s, ok := summary[dr.name]; ok {
			fmt.Fprintln(os.Stderr, s)
		}
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(min(i, len(sorted))-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
