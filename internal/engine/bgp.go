package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/tunroute/tunroute/internal/bgp"
	"github.com/tunroute/tunroute/internal/config"
)

// BGP speakers are processes, not kernel objects: they are started after
// the kernel change (their namespaces, devices and kill switch first: a
// session never opens before the kill switch) and stopped before it (a
// stopped engine withdraws its routes while its links still exist).

func (e *Engine) bgpManager() *bgp.Manager { return &bgp.Manager{RunDir: e.runDir()} }

// bgpChanges lists the speakers to start, reload or stop for cfg (nil:
// stop them all).
func (e *Engine) bgpChanges(cfg *config.Config) ([]bgp.Change, error) {
	var speakers []bgp.Speaker
	if cfg != nil {
		speakers = bgp.Speakers(cfg, e.Netns)
	}
	return e.bgpManager().Changes(speakers, e.Netns)
}

// bgpLines are the plan lines of the speakers' changes.
func bgpLines(changes []bgp.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, "  * "+c.String())
	}
	return out
}

// BGPStatus reports the namespace's speakers, their sessions and routes.
func (e *Engine) BGPStatus(ctx context.Context) ([]bgp.InstanceStatus, error) {
	return e.bgpManager().Status(ctx, e.Netns)
}

// applyBGP runs around the kernel apply: check every new configuration
// with its engine first (a bad one changes nothing), stop before, start
// and reload after. undo puts the kernel back if the speakers fail.
func (e *Engine) applyBGP(changes []bgp.Change, kernel func() error, undo func() error) error {
	if len(changes) == 0 {
		return kernel()
	}
	ctx := context.Background()
	m := e.bgpManager()
	for _, c := range changes {
		if c.Speaker != nil {
			if err := m.Check(ctx, *c.Speaker); err != nil {
				return fmt.Errorf("%s: %w", c, err)
			}
		}
	}
	before, after := bgp.Split(changes)
	if err := m.Apply(ctx, before); err != nil {
		return err
	}
	if err := kernel(); err != nil {
		return err
	}
	if err := m.Apply(ctx, after); err != nil {
		msg := err.Error()
		if uerr := undo(); uerr != nil {
			return fmt.Errorf("starting the BGP speakers: %s; rolling the kernel change back failed: %w", msg, uerr)
		}
		if len(before) > 0 {
			var stopped []string
			for _, c := range before {
				stopped = append(stopped, c.String())
			}
			msg += " (the kernel change was rolled back; these stay done: " + strings.Join(stopped, "; ") + ")"
		}
		return fmt.Errorf("starting the BGP speakers: %s", msg)
	}
	return nil
}
