package fibdiff

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestLazyDifferential is TestDifferential for explain on a live
// namespace: random states (tr-co-fd-<pid>-<n>) grown by a big foreign
// table in main (more routes than a scoped read keeps whole), each query
// answered from a read of only the rules and the routes covering its
// addresses (kernel.RouteScope with fib.LookupPoints), against the
// kernel's `ip route get` and against the whole state.
func TestLazyDifferential(t *testing.T) {
	testns.Need(t, "ip")
	compared, scopedReads := 0, 0
	for n := range 3 {
		seed := uint64(900 + n)
		ns := fmt.Sprintf("tr-co-fd-%d-%d", os.Getpid(), n)
		newNS(t, ns)
		t.Cleanup(func() { delNS(ns) })
		g := newDiffGen(seed)
		setup := g.setup()
		applySteps(t, ns, setup.steps())
		var big strings.Builder
		for i := range kernel.DefaultWhole + 2000 {
			fmt.Fprintf(&big, "route add 172.%d.%d.%d/28 dev lo proto bgp\n", 16+i/4096, i/16%256, i%16*16)
		}
		cmd := exec.Command("ip", "-n", ns, "-batch", "-")
		cmd.Stdin = strings.NewReader(big.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("big table: %v: %s", err, out)
		}
		st := observe(t, ns, setup.unmerged)
		whole, err := fib.New(st)
		if err != nil {
			t.Fatal(err)
		}
		g.learn(st)
		qs := make([]string, 120)
		for i := range qs {
			qs[i] = g.query()
			if i%4 == 0 { // inside the big table
				qs[i] = fmt.Sprintf("172.16.%d.%d", i%256, i%200+1)
			}
		}
		answers := kernelAnswers(t, ns, qs)
		h, err := kernel.Open(ns)
		if err != nil {
			t.Fatal(err)
		}
		for i, q := range qs {
			pq, err := fib.ParseQuery(strings.Fields(q))
			if err != nil {
				t.Fatalf("query %q: %v", q, err)
			}
			part, err := h.ObserveWith(kernel.ObserveOptions{Routes: &kernel.RouteScope{RuleTables: true, Points: fib.LookupPoints(pq)}})
			if err != nil {
				t.Fatal(err)
			}
			if len(part.Routes) < len(st.Routes)/2 {
				scopedReads++
			}
			part.Hidden.RulesModified = &setup.unmerged
			f, err := fib.New(part)
			if err != nil {
				t.Fatal(err)
			}
			r, w := f.Lookup(pq), whole.Lookup(pq)
			compared++
			if string(r.JSON()) != string(w.JSON()) || r.Text() != w.Text() {
				t.Errorf("seed %d: %s: the scoped read answers\n%s\nthe whole state\n%s", seed, q, r.Text(), w.Text())
			}
			if why := agree(answers[i], &r); why != "" {
				t.Errorf("seed %d: ip route get %s\n kernel: %s\n fib (scoped read): %s\n %s", seed, q, answers[i], r.JSON(), why)
			}
		}
		h.Close()
		delNS(ns)
	}
	if scopedReads < compared/2 {
		t.Errorf("%d of %d reads were cut by the scope; the big table should have been", scopedReads, compared)
	}
	t.Logf("%d queries compared", compared)
}
