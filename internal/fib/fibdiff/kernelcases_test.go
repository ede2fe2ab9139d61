package fibdiff

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// snapshotPath is where the observed snapshot of case i is recorded.
func snapshotPath(i int) string { return fmt.Sprintf("testdata/kernelcases/%02d.json", i+1) }

// TestKernelCasesRecorded checks fib on the recorded snapshot of every
// case against the recorded kernel answers: the same cases without root
// or a kernel.
func TestKernelCasesRecorded(t *testing.T) {
	cases, _ := readKernelCases(t)
	for ci, c := range cases {
		st, err := state.LoadFile(snapshotPath(ci))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f, err := fib.New(st)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, q := range c.queries {
			pq, err := fib.ParseQuery(strings.Fields(q))
			if err != nil {
				t.Fatalf("%s: %q: %v", c.name, q, err)
			}
			r := f.Lookup(pq)
			if why := agree(c.kernel[i], &r); why != "" {
				t.Errorf("%s:\nip route get %s\n kernel: %s\n fib:    %s\n %s", c.name, q, c.kernel[i], r.JSON(), why)
			}
		}
	}
}

type kernelCase struct {
	name    string
	setup   []string
	queries []string
	kernel  []string // "" when not recorded yet
}

func readKernelCases(t testing.TB) ([]kernelCase, []string) {
	data, err := os.ReadFile("testdata/kernelcases.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var out []kernelCase
	for _, l := range lines {
		if strings.HasPrefix(l, "case: ") {
			out = append(out, kernelCase{name: l[6:]})
			continue
		}
		if len(out) == 0 {
			continue
		}
		c := &out[len(out)-1]
		switch {
		case strings.HasPrefix(l, "setup: "):
			c.setup = append(c.setup, l[7:])
		case strings.HasPrefix(l, "query: "):
			c.queries = append(c.queries, l[7:])
			c.kernel = append(c.kernel, "")
		case strings.HasPrefix(l, "kernel: "):
			c.kernel[len(c.kernel)-1] = l[8:]
		}
	}
	return out, lines
}

// TestKernelCases checks the cases of testdata/kernelcases.txt: fib on
// the observed snapshot against the running kernel and against the
// recorded answer. Root only (namespaces tr-fx-k-<pid>).
func TestKernelCases(t *testing.T) {
	testns.Need(t, "ip")
	cases, lines := readKernelCases(t)
	record := os.Getenv("TUNROUTE_RECORD") != ""
	ns := fmt.Sprintf("tr-fx-k-%d", os.Getpid())
	t.Cleanup(func() { delNS(ns) })
	var answers [][]string
	for ci, c := range cases {
		newNS(t, ns)
		steps := append([]string{"sysctl net.ipv6.conf.all.accept_dad=0", "sysctl net.ipv6.conf.default.accept_dad=0"}, c.setup...)
		applySteps(t, ns, steps)
		st := observeSnapshot(t, ns)
		if record {
			var buf bytes.Buffer
			if err := st.Write(&buf); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(snapshotPath(ci), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f, err := fib.New(st)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		kern := kernelAnswers(t, ns, c.queries)
		answers = append(answers, kern)
		for i, q := range c.queries {
			pq, err := fib.ParseQuery(strings.Fields(q))
			if err != nil {
				t.Fatalf("%s: %q: %v", c.name, q, err)
			}
			r := f.Lookup(pq)
			if why := agree(kern[i], &r); why != "" {
				t.Errorf("%s:\nip route get %s\n kernel: %s\n fib:    %s\n %s", c.name, q, kern[i], r.JSON(), why)
			}
			// An answer the model calls uncertain (a multipath hash with
			// the kernel's seed unknown: random once per boot) may differ
			// from the recorded one in another boot; agree checked it is
			// one the model allows.
			if !record && kern[i] != c.kernel[i] && len(r.Uncertain) == 0 {
				t.Errorf("%s: ip route get %s: the kernel now answers\n %s\nrecorded:\n %s", c.name, q, kern[i], c.kernel[i])
			}
		}
		delNS(ns)
	}
	if record {
		var out []string
		ci, qi := -1, 0
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "case: "):
				ci, qi = ci+1, 0
			case strings.HasPrefix(l, "kernel: "):
				continue
			}
			out = append(out, l)
			if strings.HasPrefix(l, "query: ") {
				out = append(out, "kernel: "+answers[ci][qi])
				qi++
			}
		}
		if err := os.WriteFile("testdata/kernelcases.txt", []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
