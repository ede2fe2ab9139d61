package health

import (
	"context"
	"net/netip"
	"testing"

	"github.com/tunroute/tunroute/internal/compile"
)

// TestMetrics: per target, the probes sent and lost only go up, with the
// last RTT and the loss over the window; per identity, the state and its
// changes.
func TestMetrics(t *testing.T) {
	f := &fakeNet{dead: map[netip.Addr]bool{}}
	p := New(f.probe, nil)
	p.Update([]compile.Probe{probeOf("isp1", "eth0", "10.1.0.2", 2, 2, 1, "203.0.113.1", "203.0.113.2")})
	if m := p.Metrics(); len(m) != 1 || m[0].Up != -1 || m[0].Targets[0].Sent != 0 {
		t.Fatalf("before a round: %+v", m)
	}
	ctx := context.Background()
	p.Round(ctx, "isp1")
	f.dead[netip.MustParseAddr("203.0.113.1")] = true
	f.dead[netip.MustParseAddr("203.0.113.2")] = true
	p.Round(ctx, "isp1")
	p.Round(ctx, "isp1")
	delete(f.dead, netip.MustParseAddr("203.0.113.2"))
	p.Round(ctx, "isp1")
	m := p.Metrics()[0]
	if m.Identity != "isp1" || m.Up != 0 || m.StateChanges != 2 {
		t.Errorf("identity: %+v, want down after 2 changes", m)
	}
	t1, t2 := m.Targets[0], m.Targets[1]
	if t1.Target != "icmp 203.0.113.1" || t1.Sent != 4 || t1.Lost != 3 || t1.RTT != 0 || t1.Loss != 0.75 {
		t.Errorf("target 1: %+v", t1)
	}
	if t2.Sent != 4 || t2.Lost != 2 || t2.RTT == 0 || t2.Loss != 0.5 {
		t.Errorf("target 2: %+v", t2)
	}
}
