package fibdiff

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/fib/fibbench"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestBenchKernel is explain's performance comparison with the kernel (run by
// bench/explain.sh; root, TUNROUTE_BENCH=1): a namespace tr-fb-<pid> with
// the full-table state of fibbench (1,000,000 IPv4 routes, 100,000 IPv6
// routes; TUNROUTE_BENCH_ROUTES scales the IPv4 count), the same random
// queries answered by `ip -batch` of `route get` lines and by fib.Batch on
// the observed snapshot, without and with 1,000 rules. It prints both
// rates, their ratio, the snapshot load time and memory per route.
//
// The routes cover public prefixes, as a full table does; they live only
// in the throw-away namespace, which has no link to anything.
func TestBenchKernel(t *testing.T) {
	if os.Getenv("TUNROUTE_BENCH") == "" {
		t.Skip("set TUNROUTE_BENCH=1 (and run as root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	n4 := envInt("TUNROUTE_BENCH_ROUTES", 1_000_000)
	nq := envInt("TUNROUTE_BENCH_QUERIES", 200_000)
	spec := fibbench.Generate(1, n4, n4/10, 1000)
	ns := fmt.Sprintf("tr-fb-%d", os.Getpid())
	newNS(t, ns)
	defer delNS(ns)
	t.Cleanup(func() { delNS(ns) })
	dir := t.TempDir()
	write := func(name string, lines []string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	applySteps(t, ns, append([]string{"sysctl net.ipv6.conf.all.accept_dad=0", "sysctl net.ipv6.conf.default.accept_dad=0"}, spec.Setup...))
	routes := write("routes", spec.RouteCommands())
	start := time.Now()
	if out, err := exec.Command("ip", "-n", ns, "-batch", routes).CombinedOutput(); err != nil {
		t.Fatalf("loading routes: %v: %.500s", err, out)
	}
	t.Logf("namespace %s: %d routes loaded with ip -batch in %.1fs", ns, len(spec.Routes), time.Since(start).Seconds())
	queries := write("queries", spec.Queries(2, nq))
	queryData, _ := os.ReadFile(queries)

	kernelRate := func() float64 {
		best := 0.0
		for i := 0; i < 2; i++ {
			devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			cmd := exec.Command("ip", "-n", ns, "-force", "-batch", queries)
			cmd.Stdout, cmd.Stderr = devnull, devnull
			start := time.Now()
			_ = cmd.Run()
			devnull.Close()
			best = max(best, float64(nq)/time.Since(start).Seconds())
		}
		return best
	}
	snapshot := func() (string, *state.State) {
		st := observe(t, ns, true)
		var buf bytes.Buffer
		if err := st.Write(&buf); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "snapshot.json")
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p, st
	}
	explainRate := func(f *fib.FIB, workers int, trace bool) float64 {
		best := 0.0
		for i := 0; i < 3; i++ {
			devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			start := time.Now()
			n, err := f.Batch(bytes.NewReader(queryData), devnull, fib.BatchOptions{Workers: workers, NoTrace: !trace})
			el := time.Since(start)
			devnull.Close()
			if err != nil || n != nq {
				t.Fatalf("batch: %d of %d: %v", n, nq, err)
			}
			best = max(best, float64(n)/el.Seconds())
		}
		return best
	}
	heap := testns.HeapAlloc
	procs := runtime.GOMAXPROCS(0)
	report := func(label string) {
		kr := kernelRate()
		path, _ := snapshot()
		fi, _ := os.Stat(path)
		h0 := heap()
		start := time.Now()
		st, err := state.LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tLoad := time.Since(start)
		h1 := heap()
		start = time.Now()
		f, err := fib.New(st)
		if err != nil {
			t.Fatal(err)
		}
		tNew := time.Since(start)
		h2 := heap()
		routes := float64(len(st.Routes))
		st = nil
		t.Logf("%s: snapshot %d routes, %.0f MB; state.LoadFile %.2fs + fib.New %.2fs; memory: FIB %.0f bytes/route (the loaded state.State %.0f bytes/route, dropped after New)",
			label, int(routes), float64(fi.Size())/1e6, tLoad.Seconds(), tNew.Seconds(), float64(h2-h1)/routes, float64(h1-h0)/routes)
		t.Logf("%s: kernel ip -batch route get: %.0f queries/s", label, kr)
		for _, c := range []struct {
			workers int
			trace   bool
		}{{1, true}, {procs, true}, {procs, false}} {
			r := explainRate(f, c.workers, c.trace)
			what := "JSON with trace"
			if !c.trace {
				what = "JSON without trace"
			}
			t.Logf("%s: fib.Batch, %d worker(s), %s: %.0f queries/s = %.1fx the kernel", label, c.workers, what, r, r/kr)
		}
		runtime.KeepAlive(f)
	}
	report("no extra rules")
	applySteps(t, ns, append(prefixed("-4 ", spec.Rules4), prefixed("-6 ", spec.Rules6)...))
	report(fmt.Sprintf("%d rules", len(spec.Rules4)+len(spec.Rules6)))
}

func prefixed(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}
