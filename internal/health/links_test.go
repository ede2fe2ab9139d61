package health

import (
	"context"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// TestObserveLinks: the prober counts a device going down or losing its
// carrier as one fall per loss, and its verdict says so with since when.
func TestObserveLinks(t *testing.T) {
	p := New(func(context.Context, *compile.Probe, config.HealthTarget) (time.Duration, error) {
		return time.Millisecond, nil
	}, nil)
	now := t0
	p.Now = func() time.Time { return now }
	h := config.Health{Interval: time.Second, Timeout: time.Second, Down: 3, Up: 5, MinTargets: 1,
		Targets: []config.HealthTarget{{Kind: config.ProbeICMP}}}
	p.Update([]compile.Probe{{Identity: "isp1", Device: "eth0", Health: h}, {Identity: "isp2", Device: "eth1", Health: h}})
	p.Round(context.Background(), "isp1")
	p.Round(context.Background(), "isp2")
	links := func(carrier0 bool) compile.Observed {
		return compile.Observed{"": &state.State{Links: []state.Link{{Name: "eth0", Up: true, Carrier: carrier0}, {Name: "eth1", Up: true, Carrier: true}}}}
	}
	if p.ObserveLinks(links(true)) {
		t.Errorf("links as they were changed a state")
	}
	now = now.Add(time.Second)
	if !p.ObserveLinks(links(false)) {
		t.Fatalf("eth0 lost its carrier: no change")
	}
	v := p.Verdicts()
	if v["isp1"].Up || v["isp1"].Why != "eth0 has no carrier" || !v["isp1"].Since.Equal(now) || !v["isp2"].Up {
		t.Errorf("verdicts %+v", v)
	}
	if p.ObserveLinks(links(false)) {
		t.Errorf("the same loss counted twice")
	}
	for _, s := range p.Status() {
		if s.Identity == "isp1" && s.Changes != 2 {
			t.Errorf("isp1: %d changes, want 2 (up, then down)", s.Changes)
		}
	}
}

// TestObserveLinksByNamespace: an identity of a routing domain is judged
// by its domain's links, never by a device of the same name elsewhere,
// and not at all when its namespace was not read.
func TestObserveLinksByNamespace(t *testing.T) {
	p := New(func(context.Context, *compile.Probe, config.HealthTarget) (time.Duration, error) {
		return time.Millisecond, nil
	}, nil)
	p.Now = func() time.Time { return t0 }
	h := config.Health{Interval: time.Second, Timeout: time.Second, Down: 3, Up: 5, MinTargets: 1,
		Targets: []config.HealthTarget{{Kind: config.ProbeICMP}}}
	p.Update([]compile.Probe{{Identity: "isp1", Device: "eth0", Health: h}, {Identity: "dom/a", Netns: "dom", Device: "eth0", Health: h}})
	p.Round(context.Background(), "isp1")
	p.Round(context.Background(), "dom/a")
	up := &state.State{Links: []state.Link{{Name: "eth0", Up: true, Carrier: true}}}
	down := &state.State{Links: []state.Link{{Name: "eth0", Up: true}}}
	p.ObserveLinks(compile.Observed{"": up})
	if v := p.Verdicts(); !v["isp1"].Up || !v["dom/a"].Up {
		t.Errorf("the domain's identity judged without its namespace: %+v", v)
	}
	p.ObserveLinks(compile.Observed{"": up, "dom": down})
	if v := p.Verdicts(); !v["isp1"].Up || v["dom/a"].Up {
		t.Errorf("dom's eth0 lost its carrier: %+v", v)
	}
}

// TestSystemProbes: the routing domains' probes are named
// DOMAIN/IDENTITY, the names compile reads their verdicts by, and run
// in the domain's namespace.
func TestSystemProbes(t *testing.T) {
	sys := &compile.System{Domains: []compile.Domain{
		{Name: "host", Netns: "", Result: &compile.Result{Probes: []compile.Probe{{Identity: "isp1", Device: "eth0"}}}},
		{Name: "dom", Netns: "dom", Result: &compile.Result{Probes: []compile.Probe{{Identity: "a", Device: "eth0"}}}},
	}}
	got := SystemProbes(sys)
	if len(got) != 2 || got[0].Identity != "isp1" || got[0].Netns != "" || got[1].Identity != "dom/a" || got[1].Netns != "dom" {
		t.Errorf("probes %+v", got)
	}
}
