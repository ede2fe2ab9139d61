package health

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func params() Params {
	return Params{Down: 3, Up: 5, MinTargets: 1, Damping: DefaultDamping}
}

// TestHysteresis: down after exactly Down failed rounds, up again only
// after Up good rounds in a row; a good round in between resets the count.
func TestHysteresis(t *testing.T) {
	m := NewMachine(params())
	now := t0
	step := func(answered int) bool {
		now = now.Add(time.Second)
		return m.Observe(now, answered, 2)
	}
	if !step(2) || m.State() != Up {
		t.Fatalf("first good round: state %s", m.State())
	}
	for i, ok := range []int{0, 0, 1, 0, 0} { // the 1 resets the count
		if step(ok) {
			t.Fatalf("round %d changed the state to %s early", i, m.State())
		}
	}
	if !step(0) || m.State() != Down {
		t.Fatalf("third failure in a row: state %s, want down", m.State())
	}
	for i := 0; i < 4; i++ {
		if step(1) {
			t.Fatalf("up after %d good rounds, want 5", i+1)
		}
	}
	if !step(1) || m.State() != Up {
		t.Fatalf("fifth good round: state %s, want up", m.State())
	}
	if m.Changes() != 3 {
		t.Errorf("%d changes, want 3", m.Changes())
	}
}

func TestMinTargets(t *testing.T) {
	p := params()
	p.MinTargets, p.Down = 2, 1
	m := NewMachine(p)
	m.Observe(t0, 2, 3)
	if m.Observe(t0.Add(time.Second), 1, 3) != true || m.State() != Down {
		t.Fatalf("1 of 3 with min_targets 2: state %s, want down", m.State())
	}
}

// TestFlapDamping: a link that is good for 2 s and dead for 2 s, for 60 s,
// probed every second with down 1 and up 1 (the most eager settings),
// would change state 30 times; damping allows a few changes, then holds
// it down until it calms, and lets it up once the penalty decays.
func TestFlapDamping(t *testing.T) {
	p := params()
	p.Down, p.Up = 1, 1
	m := NewMachine(p)
	now := t0
	for s := 0; s < 60; s++ {
		now = t0.Add(time.Duration(s) * time.Second)
		answered := 0
		if (s/2)%2 == 0 {
			answered = 1
		}
		m.Observe(now, answered, 1)
	}
	if m.Changes() > 6 {
		t.Errorf("%d state changes in 60 s of flapping, want at most 6", m.Changes())
	}
	if !m.Suppressed() || m.State() != Down {
		t.Fatalf("after flapping: state %s suppressed %v, want held down", m.State(), m.Suppressed())
	}
	// Calm: it comes back once the penalty is below Reuse, not before.
	var upAt time.Time
	for s := 1; s <= 120 && upAt.IsZero(); s++ {
		at := now.Add(time.Duration(s) * time.Second)
		if m.Observe(at, 1, 1) {
			upAt = at
			if pen := m.Penalty(at); pen >= p.Damping.Reuse {
				t.Errorf("up with penalty %.0f >= reuse %.0f", pen, p.Damping.Reuse)
			}
		}
	}
	if upAt.IsZero() {
		t.Fatal("never up again after the link calmed")
	}
	if held := upAt.Sub(now); held > 34*time.Second {
		t.Errorf("held down %s after the link calmed, want at most 34 s (the penalty ceiling)", held)
	}
	t.Logf("%d changes while flapping; up again %s after it calmed", m.Changes()-1, upAt.Sub(now))
	// Without damping the same flapping changes the state every 2 s.
	p.Damping = Damping{}
	m = NewMachine(p)
	for s := 0; s < 60; s++ {
		answered := 0
		if (s/2)%2 == 0 {
			answered = 1
		}
		m.Observe(t0.Add(time.Duration(s)*time.Second), answered, 1)
	}
	if m.Changes() != 30 {
		t.Errorf("undamped: %d changes, want 30", m.Changes())
	}
}

// TestFallOnLinkLoss: a lost carrier makes an up identity down at once
// (no probe has to time out); a link that comes back needs Up good
// rounds; falling again while recovering is flapping, and the third fall
// in a short time holds the identity down until the penalty decays,
// however good its probes.
func TestFallOnLinkLoss(t *testing.T) {
	m := NewMachine(params())
	now := t0
	m.Observe(now, 1, 1)
	now = now.Add(time.Second)
	if !m.Fall(now, "eth0 has no carrier") || m.State() != Down || m.Why() != "eth0 has no carrier" {
		t.Fatalf("a lost carrier: state %s (%s), want down at once", m.State(), m.Why())
	}
	if m.Fall(now, "eth0 has no carrier") {
		t.Errorf("a second fall while down (no recovery) changed the state")
	}
	// Two good rounds, then the link goes again: flapping.
	for range 2 {
		now = now.Add(time.Second)
		m.Observe(now, 1, 1)
	}
	now = now.Add(time.Second)
	m.Fall(now, "eth0 has no carrier")
	for range 2 {
		now = now.Add(time.Second)
		m.Observe(now, 1, 1)
	}
	now = now.Add(time.Second)
	m.Fall(now, "eth0 has no carrier")
	if !m.Suppressed() {
		t.Fatalf("three falls in %s: not suppressed (penalty %.0f)", now.Sub(t0), m.Penalty(now))
	}
	// Calm: good rounds, but held down until the penalty decays.
	var upAt time.Time
	for i := 0; i < 120 && upAt.IsZero(); i++ {
		now = now.Add(time.Second)
		if m.Observe(now, 1, 1) && m.State() == Up {
			upAt = now
		}
	}
	if upAt.IsZero() {
		t.Fatalf("never up again after calming")
	}
	if held := upAt.Sub(t0); held < 20*time.Second {
		t.Errorf("up again %s after the start, before the damping could decay", held)
	}
}
