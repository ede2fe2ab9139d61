// Package health runs the health checks of tunroute's identities: probes
// that leave through the identity they test (bound to its device and
// address, marked for its table), a state machine per identity with
// down/up hysteresis and flap damping, and the verdicts (Health) that
// compile turns into the active members of failover and balance groups.
package health

import (
	"math"
	"time"
)

// State is an identity's health.
type State int

const (
	// Unknown: no round has finished yet. Compile counts it as healthy.
	Unknown State = iota
	Up
	Down
)

func (s State) String() string {
	return [...]string{"unknown", "up", "down"}[s]
}

// Damping holds a flapping identity down (RFC 2439's route flap damping,
// for paths): every fall adds Penalty, which halves every HalfLife; once
// it reaches Suppress the identity stays down, however good its probes,
// until the penalty has decayed below Reuse.
type Damping struct {
	Penalty  float64
	Suppress float64
	Reuse    float64
	HalfLife time.Duration
}

// DefaultDamping suppresses the third fall within a few half-lives: two
// quick falls are failovers, the third is a flapping link, held down for
// about half a minute after it calms.
var DefaultDamping = Damping{Penalty: 1000, Suppress: 2500, Reuse: 750, HalfLife: 15 * time.Second}

// Params are an identity's thresholds.
type Params struct {
	// Down consecutive failed rounds make an up identity down; Up
	// consecutive good rounds make a down one up.
	Down, Up int
	// MinTargets is how many targets must answer for a round to be good.
	MinTargets int
	Damping    Damping
}

// Machine is the pure state machine of one identity: it is told the
// outcome of each round and the time, and says when the state changes.
type Machine struct {
	P Params

	state      State
	bad, good  int
	penalty    float64
	penaltyAt  time.Time
	suppressed bool
	lastChange time.Time
	why        string
	changeWhy  string
	changes    int
}

// NewMachine returns a machine in the unknown state.
func NewMachine(p Params) *Machine { return &Machine{P: p} }

// State is the current state.
func (m *Machine) State() State { return m.state }

// Why says what made the last change (or why a change is held back).
func (m *Machine) Why() string { return m.why }

// ChangeWhy says what made the last change (Why without the reasons a
// change is held back: it changes only with the state).
func (m *Machine) ChangeWhy() string { return m.changeWhy }

// LastChange is when the state last changed (zero if never).
func (m *Machine) LastChange() time.Time { return m.lastChange }

// Changes counts the state changes so far.
func (m *Machine) Changes() int { return m.changes }

// Suppressed reports whether damping holds the identity down.
func (m *Machine) Suppressed() bool { return m.suppressed }

// Penalty is the damping penalty at now.
func (m *Machine) Penalty(now time.Time) float64 {
	if m.penalty == 0 || m.P.Damping.HalfLife <= 0 {
		return m.penalty
	}
	dt := now.Sub(m.penaltyAt)
	if dt <= 0 {
		return m.penalty
	}
	return m.penalty * math.Exp2(-float64(dt)/float64(m.P.Damping.HalfLife))
}

// Observe records a finished round at now in which answered of total
// targets answered, and reports whether the state changed.
func (m *Machine) Observe(now time.Time, answered, total int) bool {
	m.penalty, m.penaltyAt = m.Penalty(now), now
	if m.suppressed && m.penalty < m.P.Damping.Reuse {
		m.suppressed = false
	}
	good := answered >= m.P.MinTargets
	if !good && m.good > 0 && m.suppressed {
		// Still flapping while held down: it stays held (RFC 2439
		// penalises withdrawals of suppressed routes too).
		m.penalty += m.P.Damping.Penalty
	}
	if ceiling := m.P.Damping.Suppress + m.P.Damping.Penalty; m.penalty > ceiling {
		// A bound on how long a calmed link is held: HalfLife *
		// log2(ceiling/Reuse) (33 s with the defaults).
		m.penalty = ceiling
	}
	if good {
		m.good, m.bad = m.good+1, 0
	} else {
		m.bad, m.good = m.bad+1, 0
	}
	switch m.state {
	case Unknown:
		if good {
			return m.change(now, Up, "first round: %d of %d targets answered", answered, total)
		}
		return m.change(now, Down, "first round: %d of %d targets answered, %d needed", answered, total, m.P.MinTargets)
	case Up:
		if m.bad >= m.P.Down {
			m.penalty += m.P.Damping.Penalty
			if m.P.Damping.Suppress > 0 && m.penalty >= m.P.Damping.Suppress {
				m.suppressed = true
			}
			return m.change(now, Down, "%d rounds in a row with fewer than %d of %d targets answering", m.bad, m.P.MinTargets, total)
		}
	case Down:
		if m.good >= m.P.Up {
			if m.suppressed {
				m.why = sprintf("flapping: held down until the damping penalty (%.0f) decays below %.0f", m.penalty, m.P.Damping.Reuse)
				return false
			}
			return m.change(now, Up, "%d good rounds in a row", m.good)
		}
	}
	return false
}

// Fall records a passive signal at now (the device down or without
// carrier): the identity is down at once, without waiting for probes to
// time out, and it counts as a fall for the damping, so a flapping link
// is held down like flapping probes. A fall while down during a recovery
// (some good rounds already) is flapping too. It reports whether the
// state changed.
func (m *Machine) Fall(now time.Time, why string) bool {
	m.penalty, m.penaltyAt = m.Penalty(now), now
	if m.suppressed && m.penalty < m.P.Damping.Reuse {
		m.suppressed = false
	}
	recovering := m.state == Down && m.good > 0
	m.good = 0
	if m.state == Down && !recovering {
		return false
	}
	m.penalty += m.P.Damping.Penalty
	if ceiling := m.P.Damping.Suppress + m.P.Damping.Penalty; m.penalty > ceiling {
		m.penalty = ceiling
	}
	if m.P.Damping.Suppress > 0 && m.penalty >= m.P.Damping.Suppress {
		m.suppressed = true
	}
	if m.state == Down {
		m.why = sprintf("%s again while recovering (flapping)", why)
		return false
	}
	return m.change(now, Down, "%s", why)
}

func (m *Machine) change(now time.Time, s State, format string, args ...any) bool {
	m.state, m.lastChange, m.why = s, now, sprintf(format, args...)
	m.changeWhy = m.why
	m.changes++
	return true
}
