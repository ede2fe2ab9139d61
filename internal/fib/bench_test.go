package fib

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

var bigOnce struct {
	sync.Once
	s       *state.State
	queries []byte
}

// big returns the full-table benchmark state (1,000,000 IPv4 routes,
// 100,000 IPv6 routes, 1,000 rules) and 200,000 queries; TUNROUTE_BENCH_ROUTES
// scales the route counts down for quick runs.
func big(tb testing.TB) (*state.State, []byte) {
	bigOnce.Do(func() {
		n4, n6 := 1_000_000, 100_000
		if v := os.Getenv("TUNROUTE_BENCH_ROUTES"); v != "" {
			fmt.Sscan(v, &n4)
			n6 = n4 / 10
		}
		s, spec := bigState(1, n4, n6, 1000)
		bigOnce.s = s
		bigOnce.queries = []byte(strings.Join(spec.Queries(2, 200_000), "\n") + "\n")
	})
	return bigOnce.s, bigOnce.queries
}

func withoutRules(s *state.State) *state.State {
	c := *s
	c.Rules = nil
	for _, r := range s.Rules {
		if r.Protocol == 2 { // the kernel's default rules
			c.Rules = append(c.Rules, r)
		}
	}
	return &c
}

func benchBatch(b *testing.B, s *state.State, queries []byte, workers int, trace bool) {
	f, err := New(s)
	if err != nil {
		b.Fatal(err)
	}
	nq := bytes.Count(queries, []byte{'\n'})
	b.ResetTimer()
	start := time.Now()
	total := 0
	for i := 0; i < b.N; i++ {
		n, err := f.Batch(bytes.NewReader(queries), io.Discard, BatchOptions{Workers: workers, NoTrace: !trace})
		if err != nil || n != nq {
			b.Fatalf("batch: %d of %d, %v", n, nq, err)
		}
		total += n
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "queries/s")
}

// go test -run XXX -bench Batch ./internal/fib/
func BenchmarkBatchNoRules1(b *testing.B) {
	s, q := big(b)
	benchBatch(b, withoutRules(s), q, 1, true)
}
func BenchmarkBatchNoRules(b *testing.B) {
	s, q := big(b)
	benchBatch(b, withoutRules(s), q, 0, true)
}
func BenchmarkBatch1000Rules1(b *testing.B) {
	s, q := big(b)
	benchBatch(b, s, q, 1, true)
}
func BenchmarkBatch1000Rules(b *testing.B) {
	s, q := big(b)
	benchBatch(b, s, q, 0, true)
}

func BenchmarkNew(b *testing.B) {
	s, _ := big(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := New(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(s.Routes)), "routes")
}

// measure runs one batch and returns queries per second of wall time
// and per second of CPU time (this process, all threads).
func measure(tb testing.TB, f *FIB, queries []byte, workers int) (wall, cpu float64) {
	runtime.GC()
	cpu0 := testns.SelfCPU()
	start := time.Now()
	n, err := f.Batch(bytes.NewReader(queries), io.Discard, BatchOptions{Workers: workers})
	el := time.Since(start)
	used := testns.SelfCPU() - cpu0
	if err != nil {
		tb.Fatal(err)
	}
	return float64(n) / el.Seconds(), float64(n) / used.Seconds()
}

// TestBenchReport prints the figures of explain's performance targets
// (TUNROUTE_BENCH=1): snapshot load time, memory per route, batch rate.
func TestBenchReport(t *testing.T) {
	if os.Getenv("TUNROUTE_BENCH") == "" {
		t.Skip("set TUNROUTE_BENCH=1")
	}
	s, queries := big(t)
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	heap := testns.HeapAlloc
	h0 := heap()
	start := time.Now()
	st, err := state.Parse(data, "big.json")
	if err != nil {
		t.Fatal(err)
	}
	tParse := time.Since(start)
	h1 := heap()
	start = time.Now()
	f, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	tNew := time.Since(start)
	h2 := heap()
	runtime.KeepAlive(st)
	st = nil
	nr := float64(len(s.Routes))
	t.Logf("snapshot: %d routes, %d rules, %.1f MB JSON", len(s.Routes), len(s.Rules), float64(len(data))/1e6)
	t.Logf("load: state.Parse %.2fs + fib.New %.2fs = %.2fs", tParse.Seconds(), tNew.Seconds(), (tParse + tNew).Seconds())
	_ = h0
	t.Logf("memory: FIB %.1f bytes/route (the state.State can be dropped once the FIB is built)", float64(h2-h1)/nr)
	var q4, q6 bytes.Buffer
	for _, l := range bytes.Split(queries, []byte{'\n'}) {
		if bytes.IndexByte(l, ':') >= 0 {
			q6.Write(l)
			q6.WriteByte('\n')
		} else if len(l) > 0 {
			q4.Write(l)
			q4.WriteByte('\n')
		}
	}
	f2, err := New(withoutRules(s))
	if err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	for _, c := range []struct {
		name    string
		f       *FIB
		q       []byte
		workers int
	}{
		{"no extra rules, 1 worker", f2, queries, 1},
		{fmt.Sprintf("no extra rules, %d workers", procs), f2, queries, procs},
		{"1000 rules, 1 worker", f, queries, 1},
		{fmt.Sprintf("1000 rules, %d workers", procs), f, queries, procs},
		{"1000 rules, 1 worker, IPv4 queries only", f, q4.Bytes(), 1},
		{"1000 rules, 1 worker, IPv6 queries only", f, q6.Bytes(), 1},
	} {
		bestW, bestC := 0.0, 0.0
		for i := 0; i < 3; i++ {
			w, cp := measure(t, c.f, c.q, c.workers)
			bestW, bestC = max(bestW, w), max(bestC, cp)
		}
		t.Logf("batch %-42s %9.0f queries/s (wall), %9.0f per CPU-second (JSON with trace; best of 3)", c.name+":", bestW, bestC)
	}
	runtime.KeepAlive(f)
}
