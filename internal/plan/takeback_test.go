package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// TestTakeBackHijackedRoute: a DHCP client replaced one of the redirect's
// /1 routes with its own (TunnelVision). Without take_back_routes the plan
// refuses, naming the route; with it, the plan replaces the route with
// tunroute's and says who held it.
func TestTakeBackHijackedRoute(t *testing.T) {
	obs := observed()
	hijack := state.Route{Table: 254, Type: state.RouteUnicast, Dst: pfx("0.0.0.0/1"), Protocol: 16, // dhcp
		Nexthops: []state.Nexthop{{Gateway: addr("10.1.0.1"), Dev: "eth0"}}}
	obs.Routes = append(obs.Routes, hijack)

	var conflict *ConflictError
	if _, err := Diff(desired(), obs); !errors.As(err, &conflict) {
		t.Fatalf("without take_back_routes: %v, want a conflict", err)
	}

	want := desired()
	for i := range want.Routes {
		want.Routes[i].TakeBack = true
	}
	p, err := Diff(want, obs)
	if err != nil {
		t.Fatalf("with take_back_routes: %v", err)
	}
	var replaced bool
	for _, op := range p.Ops {
		if op.Action == state.Replace && op.Route != nil && op.Route.Dst == pfx("0.0.0.0/1") {
			replaced = op.PrevRoute != nil && op.PrevRoute.Protocol == 16
		}
	}
	if !replaced {
		t.Errorf("no replace of the hijacked route in %v", p.Ops)
	}
	if len(p.TakenBack) != 1 || !strings.Contains(p.TakenBack[0], "held by proto dhcp") {
		t.Errorf("TakenBack = %q, want who held it", p.TakenBack)
	}
	// A foreign route tunroute does not want is still left alone.
	for _, op := range p.Ops {
		if op.Route != nil && op.Route.Dst == pfx("10.77.0.0/16") {
			t.Errorf("touched a foreign route it does not want: %v", op)
		}
	}
}
