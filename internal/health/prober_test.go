package health

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
)

// fakeNet answers probes by a table of dead targets, and records every
// probe as the socket would see it (device, source, mark).
type fakeNet struct {
	mu   sync.Mutex
	dead map[netip.Addr]bool
	seen []string
}

func (f *fakeNet) probe(ctx context.Context, p *compile.Probe, t config.HealthTarget) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, p.Device+" "+p.Source(t.Addr).String()+" "+t.String())
	if f.dead[t.Addr] {
		return 0, errors.New("timeout")
	}
	return 3 * time.Millisecond, nil
}

func probeOf(name, dev, src string, down, up, min int, targets ...string) compile.Probe {
	h := config.Health{Interval: time.Second, Timeout: time.Second, Down: down, Up: up, MinTargets: min}
	for _, s := range targets {
		h.Targets = append(h.Targets, config.HealthTarget{Kind: config.ProbeICMP, Addr: netip.MustParseAddr(s)})
	}
	return compile.Probe{Identity: name, Device: dev, Source4: netip.MustParseAddr(src), Mark: 0x0f000000, Mask: 0x0f000000, Table: 1000, Health: h}
}

func TestProberRounds(t *testing.T) {
	f := &fakeNet{dead: map[netip.Addr]bool{}}
	p := New(f.probe, nil)
	var changes []string
	var mu sync.Mutex
	done := make(chan struct{}, 10)
	p.OnChange = func(id string, s State) {
		mu.Lock()
		changes = append(changes, id+" "+s.String())
		mu.Unlock()
		done <- struct{}{}
	}
	p.Update([]compile.Probe{
		probeOf("isp1", "eth0", "10.1.0.2", 3, 2, 1, "203.0.113.1", "203.0.113.2"),
		probeOf("isp2", "eth1", "10.2.0.2", 3, 2, 1, "203.0.113.1"),
	})
	ctx := context.Background()
	if h := p.Health(); len(h) != 0 {
		t.Fatalf("before any round: %v, want nothing judged", h)
	}
	now := t0
	p.Now = func() time.Time { return now }
	round := func() {
		now = now.Add(time.Second)
		p.Round(ctx, "isp1")
		p.Round(ctx, "isp2")
	}
	round()
	<-done
	<-done
	if h := p.Health(); !reflect.DeepEqual(h, map[string]bool{"isp1": true, "isp2": true}) {
		t.Fatalf("after a good round: %v", h)
	}
	// One target of two dead: min_targets 1 still holds.
	f.dead[netip.MustParseAddr("203.0.113.2")] = true
	round()
	round()
	round()
	if h := p.Health(); !h["isp1"] {
		t.Fatalf("one target of two dead made isp1 down")
	}
	st := p.Status()[0]
	if st.Targets[1].Loss != 0.75 || st.Targets[0].RTT != 3*time.Millisecond || st.Targets[1].LastErr != "timeout" {
		t.Errorf("target status %+v", st.Targets)
	}
	f.dead[netip.MustParseAddr("203.0.113.1")] = true
	round()
	round()
	if h := p.Health(); !h["isp1"] || !h["isp2"] {
		t.Fatalf("down after 2 failed rounds, want 3: %v", h)
	}
	round()
	<-done
	<-done
	if h := p.Health(); !reflect.DeepEqual(h, map[string]bool{"isp1": false, "isp2": false}) {
		t.Fatalf("after 3 failed rounds: %v", h)
	}
	st = p.Status()[0]
	if st.State != "down" || st.LastChange != now || st.Changes != 2 {
		t.Errorf("status %+v", st)
	}
	mu.Lock()
	if want := []string{"isp1 up", "isp2 up", "isp1 down", "isp2 down"}; len(changes) != 4 {
		t.Errorf("changes %v, want %v in some order per round", changes, want)
	}
	mu.Unlock()
	// Every probe named its identity's device and source.
	for _, s := range f.seen {
		if s[:4] == "eth0" && s[5:13] != "10.1.0.2" || s[:4] == "eth1" && s[5:13] != "10.2.0.2" {
			t.Errorf("probe %q left with another identity's device or address", s)
		}
	}
	// An unchanged probe keeps its state over an Update; a changed one
	// starts over.
	p.Update([]compile.Probe{
		probeOf("isp1", "eth0", "10.1.0.2", 3, 2, 1, "203.0.113.1", "203.0.113.2"),
		probeOf("isp2", "eth1", "10.2.0.9", 3, 2, 1, "203.0.113.1"),
	})
	if h := p.Health(); !reflect.DeepEqual(h, map[string]bool{"isp1": false}) {
		t.Errorf("after Update: %v", h)
	}
	p.Update(nil)
	if h := p.Health(); len(h) != 0 {
		t.Errorf("after removing every probe: %v", h)
	}
}
