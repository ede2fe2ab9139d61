package bgp

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// The route protocols and metrics of what the engines install: BIRD's
// (RTPROT_BIRD, its kernel protocol's metric) and FRR's zebra for bgpd
// (RTPROT_BGP, metric 20).
var engineRoutes = []struct {
	name   string
	proto  state.Protocol
	metric uint32
}{{"bird", 12, kernelMetric}, {"frr", 186, 20}}

func learnedRoute(proto state.Protocol, metric uint32, dst, gw, dev string, table uint32) state.Route {
	return state.Route{Table: table, Type: state.RouteUnicast, Dst: netip.MustParsePrefix(dst), Protocol: proto,
		Metric: metric, Scope: state.ScopeUniverse, Nexthops: []state.Nexthop{{Gateway: netip.MustParseAddr(gw), Dev: dev}}}
}

func ownRoute(dst, dev string, table uint32) state.Route {
	return state.Route{Table: table, Type: state.RouteUnicast, Dst: netip.MustParsePrefix(dst), Protocol: state.Proto,
		Scope: state.ScopeLink, Nexthops: []state.Nexthop{{Dev: dev}}}
}

// TestLearnedRoutesNotOwned: the routes BIRD installs are not
// tunroute's, so plan and down never delete or replace them, and a
// config that wants the same destination meets a conflict instead of
// overwriting what BGP learned.
func TestLearnedRoutesNotOwned(t *testing.T) {
	for _, e := range engineRoutes {
		t.Run(e.name, func(t *testing.T) { learnedNotOwned(t, e.proto, e.metric) })
	}
}

func learnedNotOwned(t *testing.T, protoBird state.Protocol, kernelMetric uint32) {
	learned := []state.Route{
		learnedRoute(protoBird, kernelMetric, "10.2.0.0/24", "10.250.0.2", "vx100", 254),
		learnedRoute(protoBird, kernelMetric, "10.3.0.0/24", "10.250.0.2", "vx100", 100),
	}
	observed := &state.State{Version: state.Version, Namespace: "red",
		Links:  []state.Link{{Index: 1, Name: "lo"}, {Index: 2, Name: "vx100"}},
		Routes: append([]state.Route{ownRoute("10.9.0.0/24", "vx100", 254)}, learned...)}
	touches := func(p *plan.Plan) bool {
		for _, op := range p.Ops {
			for _, r := range []*state.Route{op.Route, op.PrevRoute} {
				if r != nil && r.Protocol == protoBird {
					return true
				}
			}
			if op.RouteSet != nil && op.RouteSet.Template.Protocol == protoBird {
				return true
			}
		}
		return false
	}

	down := plan.Down(observed)
	if touches(down) || len(down.Ops) != 1 || down.Ops[0].Route.Dst.String() != "10.9.0.0/24" {
		t.Errorf("down: %+v; want only tunroute's route deleted", down.Ops)
	}

	desired := &state.State{Version: state.Version, Routes: []state.Route{ownRoute("10.8.0.0/24", "vx100", 254)}}
	p, err := plan.Diff(desired, observed)
	if err != nil {
		t.Fatal(err)
	}
	if touches(p) {
		t.Errorf("plan touches learned routes: %+v", p.Ops)
	}

	// The config routes a learned destination itself: its route (metric
	// 0) goes beside the engine's (metric 32 or 20) and wins the lookup;
	// the engine's stays.
	desired.Routes = append(desired.Routes, ownRoute("10.2.0.0/24", "vx100", 254))
	if p, err = plan.Diff(desired, observed); err != nil || touches(p) {
		t.Errorf("a config route beside a learned one: %v %+v", err, p)
	}
	// With the engine's metric it would be the same kernel route:
	// refused, not replaced.
	same := ownRoute("10.2.0.0/24", "vx100", 254)
	same.Metric = kernelMetric
	desired.Routes = append(desired.Routes[:1], same)
	var conflict *plan.ConflictError
	if _, err := plan.Diff(desired, observed); !errors.As(err, &conflict) {
		t.Errorf("a config route over a learned one: %v; want a conflict", err)
	}
}
