package health

import (
	"fmt"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/kernel"
)

// Replan is what the daemon runs at start and whenever the prober reports
// a change (OnChange) or a link changes state: under the engine's lock,
// observe, plan with the prober's verdicts and the passive signals, apply
// (one replacement per route: never a moment without one), hand the new
// probes to the prober, and forget the connections of the identities the
// traffic left. last is the previous call's result (nil the first time);
// the new one is returned for the next call.
func Replan(e *engine.Engine, p *Prober, last *compile.Result) (*compile.Result, error) {
	unlock, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	s, err := e.Observe(false)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	cfg, err := e.LoadConfig()
	if err != nil {
		return nil, err
	}
	f, err := e.LoadFacts()
	if err != nil {
		return nil, err
	}
	p.ObserveLinks(s.Observed)
	v := p.Verdicts()
	if last != nil {
		v = WithPassiveVerdicts(v, WireGuardDown(s.Top(), last.Identities, time.Now()), f.Verdicts, time.Now())
	}
	// Recorded by the apply, so that an apply by hand or a VPN hook
	// keeps the failover (and status and explain say why).
	if err := f.RecordVerdicts(e, v); err != nil {
		return nil, err
	}
	c, err := s.Plan(cfg, f)
	if err != nil {
		return nil, err
	}
	if _, err := s.Apply(c); err != nil {
		return nil, err
	}
	res := c.Compiled()
	p.Update(SystemProbes(c.System))
	if gone := Abandoned(last, res); len(gone) > 0 {
		if _, err := kernel.ForgetConnections(e.Netns, gone); err != nil {
			return res, fmt.Errorf("applied, but forgetting the connections of %v: %w", gone, err)
		}
	}
	return res, nil
}
