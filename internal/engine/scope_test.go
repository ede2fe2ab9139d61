package engine

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// bigClient is the lab client with a main table bigger than a scope keeps
// whole: foreign routes (proto bgp) over private space, some of them
// covering the lab's addresses, and extra routes given.
func bigClient(extra ...state.Route) *state.State {
	s := labClient()
	via := func() []state.Nexthop {
		return []state.Nexthop{{Gateway: netip.MustParseAddr("10.1.0.1"), Dev: "eth0", Index: 2}}
	}
	for i := range kernel.DefaultWhole + 1000 {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + i/4096), byte(i / 16), byte(i % 16 * 16)}), 28)
		s.Routes = append(s.Routes, state.Route{Table: state.TableMain, Type: state.RouteUnicast, Dst: dst,
			Protocol: 186, Scope: state.ScopeUniverse, Nexthops: via()})
	}
	for _, p := range []string{"10.0.0.0/8", "10.8.0.0/16", "198.51.100.0/24", "192.168.0.0/16", "10.1.0.0/16"} {
		s.Routes = append(s.Routes, state.Route{Table: state.TableMain, Type: state.RouteUnicast, Dst: netip.MustParsePrefix(p),
			Protocol: 186, Scope: state.ScopeUniverse, Nexthops: via()})
	}
	s.Routes = append(s.Routes, extra...)
	return s
}

func planLines(s *Session, c *Change, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	defer s.Close()
	return strings.Join(c.Plan.Lines(), "\n") + "\nnotes: " + strings.Join(c.Notes, "\n")
}

// TestScopedPlanIsTheFullPlan: for every test config, on a host whose main
// table is big, the plan made from the scoped read is the plan made from
// the full read, and the scoped read holds only a few of the foreign
// routes.
func TestScopedPlanIsTheFullPlan(t *testing.T) {
	for _, cfg := range testConfigs(t) {
		t.Run(filepath.Base(cfg), func(t *testing.T) {
			e := memEngine(t, newMemHost(bigClient()), cfg)
			full := func() string {
				l, err := e.LoadConfig()
				if err != nil {
					return "error: " + err.Error()
				}
				f, err := e.LoadFacts()
				if err != nil {
					t.Fatal(err)
				}
				s, err := e.Observe(true)
				if err != nil {
					t.Fatal(err)
				}
				c, err := s.Plan(l, f)
				return planLines(s, c, err)
			}()
			s, c, err := e.PlanConfig(true)
			if s != nil && s.scope != nil && len(s.Top().Routes) > 500 {
				t.Errorf("the scoped read kept %d routes", len(s.Top().Routes))
			}
			if got := planLines(s, c, err); got != full {
				t.Errorf("scoped plan:\n%s\nfull plan:\n%s", got, full)
			}
		})
	}
}

// TestScopedPlanSeesConflicts: another's route under the key of one of the
// redirect's routes is found among a big main table, and refused.
func TestScopedPlanSeesConflicts(t *testing.T) {
	held := state.Route{Table: state.TableMain, Type: state.RouteUnicast, Dst: netip.MustParsePrefix("128.0.0.0/1"),
		Protocol: 3, Scope: state.ScopeUniverse, Nexthops: []state.Nexthop{{Gateway: netip.MustParseAddr("10.1.0.1"), Dev: "eth0", Index: 2}}}
	e := memEngine(t, newMemHost(bigClient(held)), "../../examples/lab-demo.yaml")
	s, _, err := e.PlanConfig(true)
	var conflict *plan.ConflictError
	if !errors.As(err, &conflict) || !strings.Contains(err.Error(), "128.0.0.0/1") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("plan with 128.0.0.0/1 held by another: %v, want a conflict on it", err)
	}
}

// TestScopeWidens: a route key compile makes that the config does not name
// (the server's host route of a gateway redirect is named; a pushed route
// is not) is read before the plan is made.
func TestScopeWidens(t *testing.T) {
	e := memEngine(t, newMemHost(bigClient()), "../../examples/lab-demo.yaml")
	s, err := e.ObserveForPlan(nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.scope != nil {
		t.Fatal("no config: the scope should be everything")
	}
	cfg, err := e.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	narrow := &kernel.RouteScope{Tables: []uint32{state.TableMain}, Points: []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
	s2, err := e.observe(true, narrow)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	f, err := e.LoadFacts()
	if err != nil {
		t.Fatal(err)
	}
	sys, err := s2.compile(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"0.0.0.0/1", "128.0.0.0/1", "198.51.100.2/32"} {
		if !s2.scope.Covers(netip.MustParsePrefix(p), 0) {
			t.Errorf("scope after compile does not cover %s: %v", p, s2.scope.Points)
		}
	}
	if _, grew := widen(s2.scope, sys); grew {
		t.Errorf("the widened scope still misses some of what compile made")
	}
	if !slices.Contains(s2.scope.Tables, state.TableLocal) {
		t.Errorf("tables %v: want local too", s2.scope.Tables)
	}
}

// countingHost counts the namespaces opened (each open is one read).
type countingHost struct {
	*memHost
	opens int
}

func (h *countingHost) Open(ns string) (Handle, error) {
	h.opens++
	return h.memHost.Open(ns)
}

// TestScopeReadsOnce: the scope a config's own words give covers what
// compile makes of the usual configs, so a plan reads the namespace once.
func TestScopeReadsOnce(t *testing.T) {
	for _, cfg := range []string{"lab-demo.yaml", "redirect-gateway.yaml", "dual-identity.yaml", "openvpn-route-noexec.yaml", "full-tunnel-lan.yaml"} {
		h := &countingHost{memHost: newMemHost(bigClient())}
		e := &Engine{Host: h, ConfigPath: "../../examples/" + cfg, RunDir: t.TempDir(), EtcNetns: "/etc/netns"}
		s, _, err := e.PlanConfig(true)
		if err != nil {
			t.Errorf("%s: %v", cfg, err)
			continue
		}
		if h.opens != 1 || s.scope == nil {
			t.Errorf("%s: %d reads (scope %v), want 1 scoped", cfg, h.opens, s.scope)
		}
		s.Close()
	}
}
