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
// traffic left, in each namespace (the top one and the routing domains).
// last is the previous call's system (nil the first time); the new one is
// returned for the next call.
func Replan(e *engine.Engine, p *Prober, last *compile.System) (*compile.System, error) {
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
	if last != nil && len(last.Domains) > 0 && last.Domains[0].Result != nil {
		v = WithPassiveVerdicts(v, WireGuardDown(s.Top(), last.Domains[0].Result.Identities, time.Now()), f.Verdicts, time.Now())
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
	p.Update(SystemProbes(c.System))
	for ns, gone := range AbandonedByNamespace(last, c.System) {
		if _, err := kernel.ForgetConnections(ns, gone); err != nil {
			return c.System, fmt.Errorf("applied, but forgetting the connections of %v in %s: %w", gone, ns, err)
		}
	}
	return c.System, nil
}
