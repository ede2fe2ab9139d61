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
		s, _, _ := bigState(1, n4, n6, 1000)
		bigOnce.s = s
		bigOnce.queries = []byte(strings.Join(bigQueries(s, 2, 200_000), "\n") + "\n")
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

// TestBenchReport prints the figures of issue 3's performance section
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
	runtime.GC()
	var m0, m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	st, err := state.Parse(data, "big.json")
	if err != nil {
		t.Fatal(err)
	}
	tParse := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	start = time.Now()
	f, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	tNew := time.Since(start)
	stateBytes := m1.HeapAlloc - m0.HeapAlloc
	st = nil
	runtime.GC()
	runtime.ReadMemStats(&m2)
	fibBytes := m2.HeapAlloc - m0.HeapAlloc
	nr := float64(len(s.Routes))
	t.Logf("snapshot: %d routes, %d rules, %.1f MB JSON", len(s.Routes), len(s.Rules), float64(len(data))/1e6)
	t.Logf("load: state.Parse %.2fs + fib.New %.2fs = %.2fs", tParse.Seconds(), tNew.Seconds(), (tParse + tNew).Seconds())
	t.Logf("memory: FIB %.1f bytes/route (state.State while loading: %.1f bytes/route)", float64(fibBytes)/nr, float64(stateBytes)/nr)
	nq := bytes.Count(queries, []byte{'\n'})
	for _, c := range []struct {
		name    string
		f       *FIB
		workers int
	}{{"1000 rules, 1 worker", f, 1}, {fmt.Sprintf("1000 rules, %d workers", runtime.GOMAXPROCS(0)), f, 0}} {
		start := time.Now()
		n, err := c.f.Batch(bytes.NewReader(queries), io.Discard, BatchOptions{Workers: c.workers})
		if err != nil || n != nq {
			t.Fatal(n, err)
		}
		t.Logf("batch %s: %.0f queries/s (JSON with trace)", c.name, float64(n)/time.Since(start).Seconds())
	}
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
	for _, c := range []struct {
		name string
		q    []byte
	}{{"IPv4 only", q4.Bytes()}, {"IPv6 only", q6.Bytes()}} {
		start := time.Now()
		n, _ := f.Batch(bytes.NewReader(c.q), io.Discard, BatchOptions{Workers: 1})
		t.Logf("batch 1000 rules, 1 worker, %s: %.0f queries/s", c.name, float64(n)/time.Since(start).Seconds())
	}
	runtime.KeepAlive(f)
	f2, _ := New(withoutRules(s))
	for _, w := range []int{1, 0} {
		start := time.Now()
		n, _ := f2.Batch(bytes.NewReader(queries), io.Discard, BatchOptions{Workers: w})
		t.Logf("batch no extra rules, workers=%d: %.0f queries/s (JSON with trace)", w, float64(n)/time.Since(start).Seconds())
	}
}
