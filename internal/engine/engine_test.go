package engine

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/testns"
)

// testConfigs are the shipped examples and a routing-domains config
// (three domains, pipes, a moved device, a domain resolver).
func testConfigs(t *testing.T) []string {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	domains := filepath.Join(t.TempDir(), "domains.yaml")
	if err := testns.Config(domains, "../domaintest/testdata/routing-domains.yaml", "tr-mem-", nil); err != nil {
		t.Fatal(err)
	}
	return append(files, domains)
}

func memEngine(t *testing.T, h *memHost, cfg string) *Engine {
	return &Engine{Host: h, ConfigPath: cfg, RunDir: t.TempDir(), EtcNetns: "/etc/netns"}
}

// TestApplyDoesWhatThePlanSays applies every test config to a host in
// memory: the changes made are exactly the plan's, in its order.
func TestApplyDoesWhatThePlanSays(t *testing.T) {
	for _, cfg := range testConfigs(t) {
		t.Run(filepath.Base(cfg), func(t *testing.T) {
			h := newMemHost(labClient())
			e := memEngine(t, h, cfg)
			s, c, err := e.PlanConfig(true)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if c.Plan.Empty() {
				t.Fatal("the plan is empty")
			}
			if _, err := s.Apply(c); err != nil {
				t.Fatal(err)
			}
			if want := c.Plan.Effects(); !reflect.DeepEqual(h.log, want) {
				t.Errorf("apply did:\n  %s\nthe plan said:\n  %s", strings.Join(h.log, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// TestRollbackAtEveryStep fails each change of each test config's apply
// in turn: what was done before it is undone, last first, and nothing
// else is touched.
func TestRollbackAtEveryStep(t *testing.T) {
	for _, cfg := range testConfigs(t) {
		t.Run(filepath.Base(cfg), func(t *testing.T) {
			ref := newMemHost(labClient())
			s, c, err := memEngine(t, ref, cfg).PlanConfig(true)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			atoms := planAtoms(c.Plan)
			for k := 1; k <= len(atoms); k++ {
				h := newMemHost(labClient())
				h.failAt = k
				e := memEngine(t, h, cfg)
				s, c, err := e.PlanConfig(true)
				if err != nil {
					t.Fatal(err)
				}
				_, err = s.Apply(c)
				s.Close()
				if !errors.Is(err, errInjected) {
					t.Fatalf("failing change %d (%s): apply returned %v", k, atoms[k-1].effect, err)
				}
				want := expectedRollback(atoms, k)
				if !reflect.DeepEqual(h.log, want) {
					t.Fatalf("failing change %d (%s):\ndid:\n  %s\nwant:\n  %s", k, atoms[k-1].effect,
						strings.Join(h.log, "\n  "), strings.Join(want, "\n  "))
				}
			}
		})
	}
}

// atom is one change of a plan: its effect, and the step it belongs to
// reduced to that change (what undoing it does).
type atom struct {
	effect string
	alone  plan.Step
	whole  plan.Step
	first  bool // the step's first change
}

func planAtoms(sp *plan.SystemPlan) []atom {
	var out []atom
	for _, s := range sp.Steps {
		effects := s.Effects()
		for i, eff := range effects {
			a := atom{effect: eff, alone: s, whole: s, first: i == 0}
			switch s.Kind {
			case plan.StepOps:
				a.alone.Ops = s.Ops[i : i+1]
			case plan.StepSysctls:
				k := sysctlKey(eff)
				a.alone.Sysctls = map[string]string{k: s.Sysctls[k]}
				a.alone.PrevSysctls = map[string]string{}
				if v, ok := s.PrevSysctls[k]; ok {
					a.alone.PrevSysctls[k] = v
				}
			}
			out = append(out, a)
		}
	}
	return out
}

// sysctlKey takes the key out of a sysctl effect "[ns] sysctl KEY=VALUE".
func sysctlKey(effect string) string {
	_, kv, _ := strings.Cut(effect, " sysctl ")
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// expectedRollback is the log of an apply whose k-th change fails: the
// changes before it, then their undoing, last first. A failed sysctl step
// is put back whole (its writes are not atomic); a failed step of kernel
// ops undoes the ops that took effect; other steps are all-or-nothing.
func expectedRollback(atoms []atom, k int) []string {
	var log []string
	for _, a := range atoms[:k-1] {
		log = append(log, a.effect)
	}
	failed := atoms[k-1]
	i := k - 2
	if failed.whole.Kind == plan.StepSysctls {
		log = append(log, failed.whole.Inverse().Effects()...)
		for ; i >= 0 && !atoms[i+1].first; i-- { // the same step's earlier keys: already put back
		}
	}
	for ; i >= 0; i-- {
		a := atoms[i]
		if a.whole.Kind == plan.StepSysctls {
			// A sysctl step is undone as a whole, once.
			if !a.first {
				continue
			}
			log = append(log, a.whole.Inverse().Effects()...)
			continue
		}
		log = append(log, a.alone.Inverse().Effects()...)
	}
	return log
}
