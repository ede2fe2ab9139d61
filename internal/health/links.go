package health

import (
	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/state"
)

// ObserveLinks feeds the passive signal of the devices into the state
// machines: an identity whose device went down or lost its carrier since
// the last call falls at once (Machine.Fall), so the verdict says so,
// and a link that comes back must pass `up` rounds of probes like any
// recovery, with the damping of a flapping link. Call it with every
// observation of the namespace, before Verdicts (the daemon's re-plan on
// a link event). observed holds the namespaces by name, as a session
// reads them (the top one and the routing domains): an identity is
// judged by the links of its probe's namespace, and not at all when that
// namespace was not read. It reports whether a state changed.
func (p *Prober) ObserveLinks(observed compile.Observed) bool {
	links := map[string]map[string]*state.Link{}
	for ns, st := range observed {
		if st == nil {
			continue
		}
		links[ns] = map[string]*state.Link{}
		for i := range st.Links {
			links[ns][st.Links[i].Name] = &st.Links[i]
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for name, t := range p.ids {
		in, read := links[t.probe.Netns]
		if !read {
			continue
		}
		l, ok := in[t.probe.Device]
		why := ""
		switch {
		case !ok:
			why = t.probe.Device + " is gone"
		case !l.Up:
			why = t.probe.Device + " is down"
		case !l.Carrier:
			why = t.probe.Device + " has no carrier"
		}
		lost := why != ""
		if lost && !t.linkLost {
			if t.m.Fall(p.Now(), why) {
				changed = true
				p.log.Info("health changed", "identity", name, "state", t.m.State().String(), "why", t.m.Why(), "device", t.probe.Device)
			}
		}
		t.linkLost = lost
	}
	return changed
}
