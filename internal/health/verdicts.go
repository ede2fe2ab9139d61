package health

import (
	"time"

	"github.com/tunroute/tunroute/internal/compile"
)

// Verdicts is every judged identity's verdict with since when and why
// (what engine.Facts.RecordVerdicts records, and status and explain
// show). An identity not judged yet is absent. The why of a verdict
// changes only with its state, so recording the same verdicts again
// writes nothing.
func (p *Prober) Verdicts() map[string]compile.Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]compile.Verdict{}
	for name, t := range p.ids {
		if s := t.m.State(); s != Unknown {
			out[name] = compile.Verdict{Up: s == Up, Since: t.m.LastChange(), Why: t.m.ChangeWhy()}
		}
	}
	return out
}

// WithPassiveVerdicts is WithPassive for verdicts: an identity a passive
// signal says is down is down, with the signal as why. The recorded
// verdict (last) is kept when it already said down (the signal's words
// hold the handshake's age, which changes every second).
func WithPassiveVerdicts(probed map[string]compile.Verdict, passive map[string]string, last map[string]compile.Verdict, now time.Time) map[string]compile.Verdict {
	out := make(map[string]compile.Verdict, len(probed)+len(passive))
	for k, v := range probed {
		out[k] = v
	}
	for k, why := range passive {
		if l, ok := last[k]; ok && !l.Up {
			out[k] = l
			continue
		}
		out[k] = compile.Verdict{Up: false, Since: now, Why: why}
	}
	return out
}
