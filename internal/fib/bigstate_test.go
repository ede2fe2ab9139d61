package fib

import (
	"fmt"
	"strings"

	"github.com/tunroute/tunroute/internal/fib/fibbench"
	"github.com/tunroute/tunroute/internal/state"
)

// bigState builds the full-table benchmark state (fibbench.Generate) in
// memory: the setup and rules go through the kernel emulator, the bulk
// routes straight into the state.
func bigState(seed uint64, n4, n6, nrules int) (*state.State, *fibbench.Spec) {
	spec := fibbench.Generate(seed, n4, n6, nrules)
	k := newKState(nopTB{})
	for _, c := range spec.Setup {
		k.ip(c)
	}
	for _, r := range spec.Rules4 {
		if err := k.ruleAdd(strings.Fields(r)[2:], false); err != nil {
			panic(err)
		}
	}
	for _, r := range spec.Rules6 {
		if err := k.ruleAdd(strings.Fields(r)[2:], true); err != nil {
			panic(err)
		}
	}
	s := k.state()
	for _, r := range spec.Routes {
		dev := fmt.Sprintf("up%d", r.Uplink)
		rt := state.Route{Table: r.Table, Type: state.RouteUnicast, Dst: r.Dst, Protocol: 3,
			Nexthops: []state.Nexthop{{Gateway: r.Gateway, Dev: dev, Index: 1 + 2*r.Uplink}}}
		if r.Dst.Addr().Is6() {
			rt.Metric = 1024
		}
		s.Routes = append(s.Routes, rt)
	}
	t := true
	s.Hidden.RulesModified = &t
	return s, spec
}

// nopTB lets kstate run outside a test.
type nopTB struct{}

type testingTB interface {
	Helper()
	Fatalf(string, ...any)
}

func (nopTB) Helper() {}
func (nopTB) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
