// Package kerneltest reads, plans and changes a test's network namespace
// through tunroute's own kernel package: the steps the root tests of
// several packages (cmd/tunroute, vmtest, verify, fibdiff) take around
// the command under test. The independent oracles (ip, nft) stay in the
// tests themselves. Only tests import it.
package kerneltest

import (
	"runtime"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// Open opens the named namespace; the handle is closed when the test
// ends.
func Open(tb testing.TB, ns string) *kernel.Handle {
	tb.Helper()
	h, err := kernel.Open(ns)
	if err != nil {
		tb.Fatalf("open %s: %v", ns, err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// Observe reads the namespace once.
func Observe(tb testing.TB, ns string) *state.State {
	tb.Helper()
	h, err := kernel.Open(ns)
	if err != nil {
		tb.Fatalf("open %s: %v", ns, err)
	}
	defer h.Close()
	s, err := h.Observe()
	if err != nil {
		tb.Fatalf("observe %s: %v", ns, err)
	}
	return s
}

// Settled reads the namespace until two reads in a row have as many
// routes and addresses (the kernel adds local routes and finishes
// duplicate address detection after a change returns) and ready (nil:
// always) accepts the read, or tries reads were made; it returns the
// last read. It waits pause between reads (zero: it only yields).
func Settled(tb testing.TB, ns string, tries int, pause time.Duration, ready func(s *state.State, try int) bool) *state.State {
	tb.Helper()
	h, err := kernel.Open(ns)
	if err != nil {
		tb.Fatalf("open %s: %v", ns, err)
	}
	defer h.Close()
	var s *state.State
	for i := 0; i < tries; i++ {
		s1, err := h.Observe()
		if err != nil {
			tb.Fatalf("observe %s: %v", ns, err)
		}
		if s != nil && len(s1.Routes) == len(s.Routes) && len(s1.Addrs) == len(s.Addrs) && (ready == nil || ready(s1, i)) {
			return s1
		}
		s = s1
		if pause > 0 {
			time.Sleep(pause)
		} else {
			runtime.Gosched()
		}
	}
	return s
}

// Plan compiles the config file at path against the namespace and plans
// it; the handle (open until the test ends) applies the plan.
func Plan(tb testing.TB, ns, path string) (*plan.Plan, *kernel.Handle) {
	tb.Helper()
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	h := Open(tb, ns)
	obs, err := h.Observe()
	if err != nil {
		tb.Fatalf("observe %s: %v", ns, err)
	}
	res, err := compile.Compile(cfg, obs, nil)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := plan.Diff(res.State, obs)
	if err != nil {
		tb.Fatal(err)
	}
	return p, h
}

// Down removes everything tunroute owns in the namespace.
func Down(tb testing.TB, ns string) {
	tb.Helper()
	h, err := kernel.Open(ns)
	if err != nil {
		tb.Fatalf("open %s: %v", ns, err)
	}
	defer h.Close()
	obs, err := h.Observe()
	if err != nil {
		tb.Fatalf("observe %s: %v", ns, err)
	}
	if _, err := h.Execute(plan.Down(obs).Ops); err != nil {
		tb.Fatalf("down in %s: %v", ns, err)
	}
}
