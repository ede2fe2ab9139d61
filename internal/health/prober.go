package health

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
)

// ProbeFunc sends one probe of p to t and waits for the answer (at most
// until ctx ends), returning the round-trip time.
type ProbeFunc func(ctx context.Context, p *compile.Probe, t config.HealthTarget) (time.Duration, error)

// lossWindow is how many rounds a target's loss figure covers.
const lossWindow = 20

// Prober runs the health checks compile asked for (Result.Probes) and
// keeps each identity's verdict.
type Prober struct {
	probe ProbeFunc
	log   *slog.Logger
	// OnChange is called (from the prober's goroutines) after an
	// identity's state changed: the daemon re-plans with Health().
	OnChange func(identity string, s State)
	// Damping is used for identities added from now on.
	Damping Damping
	// Now is the clock (time.Now; tests set a fake one).
	Now func() time.Time

	mu   sync.Mutex
	ids  map[string]*tracked
	stop map[string]context.CancelFunc
	ctx  context.Context
}

type tracked struct {
	probe   compile.Probe
	m       *Machine
	targets []TargetStatus
	// linkLost: the device was down or without carrier at the last
	// ObserveLinks (a fall is counted once per loss).
	linkLost bool
}

// TargetStatus is what one target's probes measured.
type TargetStatus struct {
	Target config.HealthTarget
	// RTT of the last answer (0 if the last probe failed).
	RTT time.Duration
	// Loss is the share of the last rounds (up to 20) without an answer.
	Loss    float64
	LastErr string `json:",omitempty"`
	history []bool
	// sent and lost count every probe since the identity's probes last
	// changed (Metrics).
	sent, lost uint64
}

// Status is an identity's health for `status`.
type Status struct {
	Identity   string
	State      string
	Suppressed bool `json:",omitempty"`
	LastChange time.Time
	Changes    int
	Why        string
	Targets    []TargetStatus
}

// New returns a prober that sends its probes with probe and logs a line
// per state change to log.
func New(probe ProbeFunc, log *slog.Logger) *Prober {
	if log == nil {
		log = slog.Default()
	}
	return &Prober{probe: probe, log: log, Damping: DefaultDamping, Now: time.Now, ids: map[string]*tracked{}, stop: map[string]context.CancelFunc{}}
}

// Update sets the probes to run (after each compile). An identity whose
// probe is unchanged keeps its state and history; a changed one (new
// address, device or targets) starts over, unknown.
func (p *Prober) Update(probes []compile.Probe) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := map[string]bool{}
	for _, pr := range probes {
		keep[pr.Identity] = true
		if t, ok := p.ids[pr.Identity]; ok && sameProbe(&t.probe, &pr) {
			continue
		}
		p.stopLocked(pr.Identity)
		t := &tracked{probe: pr, m: NewMachine(Params{Down: pr.Health.Down, Up: pr.Health.Up, MinTargets: pr.Health.MinTargets, Damping: p.Damping})}
		for _, tg := range pr.Health.Targets {
			t.targets = append(t.targets, TargetStatus{Target: tg})
		}
		p.ids[pr.Identity] = t
		if p.ctx != nil {
			p.startLocked(pr.Identity)
		}
	}
	for name := range p.ids {
		if !keep[name] {
			p.stopLocked(name)
			delete(p.ids, name)
		}
	}
}

func sameProbe(a, b *compile.Probe) bool {
	if a.Device != b.Device || a.Netns != b.Netns || a.Source4 != b.Source4 || a.Source6 != b.Source6 || a.Mark != b.Mark ||
		a.Table != b.Table || a.Health.Interval != b.Health.Interval || a.Health.Timeout != b.Health.Timeout ||
		a.Health.Down != b.Health.Down || a.Health.Up != b.Health.Up || a.Health.MinTargets != b.Health.MinTargets ||
		len(a.Health.Targets) != len(b.Health.Targets) {
		return false
	}
	for i := range a.Health.Targets {
		if a.Health.Targets[i] != b.Health.Targets[i] {
			return false
		}
	}
	return true
}

// Start runs every identity's rounds, each at its interval, until ctx
// ends.
func (p *Prober) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
	for name := range p.ids {
		p.startLocked(name)
	}
}

func (p *Prober) startLocked(name string) {
	ctx, cancel := context.WithCancel(p.ctx)
	p.stop[name] = cancel
	interval := p.ids[name].probe.Health.Interval
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			p.Round(ctx, name)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

func (p *Prober) stopLocked(name string) {
	if cancel, ok := p.stop[name]; ok {
		cancel()
		delete(p.stop, name)
	}
}

// Round probes every target of the identity at once, waits for the
// answers (up to the timeout), feeds the state machine with the outcome
// at the time the round ended (Now), and reports
// whether the state changed.
func (p *Prober) Round(ctx context.Context, name string) bool {
	p.mu.Lock()
	t, ok := p.ids[name]
	if !ok {
		p.mu.Unlock()
		return false
	}
	pr := t.probe
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, pr.Health.Timeout)
	defer cancel()
	type answer struct {
		rtt time.Duration
		err error
	}
	answers := make([]answer, len(pr.Health.Targets))
	var wg sync.WaitGroup
	for i, tg := range pr.Health.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := p.probe(ctx, &pr, tg)
			answers[i] = answer{rtt, err}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
		return false // stopped, not a verdict
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids[name] != t {
		return false // replaced meanwhile
	}
	answered := 0
	for i, a := range answers {
		ts := &t.targets[i]
		ts.history = append(ts.history, a.err == nil)
		ts.sent++
		if a.err != nil {
			ts.lost++
		}
		if len(ts.history) > lossWindow {
			ts.history = ts.history[1:]
		}
		lost := 0
		for _, ok := range ts.history {
			if !ok {
				lost++
			}
		}
		ts.Loss = float64(lost) / float64(len(ts.history))
		ts.RTT, ts.LastErr = 0, ""
		if a.err == nil {
			answered++
			ts.RTT = a.rtt
		} else {
			ts.LastErr = a.err.Error()
		}
	}
	if !t.m.Observe(p.Now(), answered, len(answers)) {
		return false
	}
	s := t.m.State()
	p.log.Info("health changed", "identity", name, "state", s.String(), "why", t.m.Why(), "device", pr.Device)
	if p.OnChange != nil {
		go p.OnChange(name, s)
	}
	return true
}

// Health is every judged identity's verdict (true: up), the input of
// compile.CompileHealth / CompileSystemHealth. An identity not judged yet
// is absent, and compile counts it as healthy.
func (p *Prober) Health() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for name, t := range p.ids {
		if s := t.m.State(); s != Unknown {
			out[name] = s == Up
		}
	}
	return out
}

// Status reports each identity's state, last change, why and per-target
// RTT and loss, sorted by identity.
func (p *Prober) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Status
	for name, t := range p.ids {
		st := Status{Identity: name, State: t.m.State().String(), Suppressed: t.m.Suppressed(),
			LastChange: t.m.LastChange(), Changes: t.m.Changes(), Why: t.m.Why()}
		for _, ts := range t.targets {
			ts.history = nil
			st.Targets = append(st.Targets, ts)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}
