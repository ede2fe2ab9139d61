package health

import (
	"sort"
	"time"
)

// IdentityMetrics is one identity's health as counters and gauges, for
// a metrics exporter: what changes only goes up, so rates can be taken.
type IdentityMetrics struct {
	Identity string
	// Up is 1 when the identity is up, 0 when down, -1 when not judged
	// yet.
	Up         int
	Suppressed bool
	// StateChanges counts the identity's state changes since its probes
	// were (re)configured.
	StateChanges uint64
	// LastChange is when the state last changed (zero if never).
	LastChange time.Time
	Targets    []TargetMetrics
}

// TargetMetrics is one target's probes.
type TargetMetrics struct {
	// Target is the target in config words ("icmp 203.0.113.1").
	Target string
	// Sent and Lost count the probes sent and those without an answer
	// in time.
	Sent, Lost uint64
	// RTT is the last answer's round-trip time (0 if the last probe was
	// lost); Loss the share lost over the last 20 rounds.
	RTT  time.Duration
	Loss float64
}

// Metrics is a snapshot of every identity's counters, sorted by
// identity; safe to call at any time from any goroutine.
func (p *Prober) Metrics() []IdentityMetrics {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]IdentityMetrics, 0, len(p.ids))
	for name, t := range p.ids {
		m := IdentityMetrics{Identity: name, Up: -1, Suppressed: t.m.Suppressed(), StateChanges: uint64(t.m.Changes()), LastChange: t.m.LastChange()}
		switch t.m.State() {
		case Up:
			m.Up = 1
		case Down:
			m.Up = 0
		}
		for _, ts := range t.targets {
			m.Targets = append(m.Targets, TargetMetrics{Target: ts.Target.String(), Sent: ts.sent, Lost: ts.lost, RTT: ts.RTT, Loss: ts.Loss})
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}
