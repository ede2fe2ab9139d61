package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/engine"
)

func newDownCmd(g *globalFlags) *cobra.Command {
	var dryRun bool
	cmd := g.engineCommand("down", "Remove everything tunroute owns in the namespace (and the domains it made), and nothing else", func(cmd *cobra.Command, e *engine.Engine) error {
		if !dryRun {
			unlock, err := e.Lock()
			if err != nil {
				return err
			}
			defer unlock()
		}
		s, err := e.ObserveOwned(true)
		if err != nil {
			return err
		}
		defer s.Close()
		c, err := s.PlanDown()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprint(out, c.Text())
		if dryRun || c.Empty() {
			return nil
		}
		start := time.Now()
		if _, err := applyChange(cmd, e, s, c, "down"); err != nil {
			return err
		}
		fmt.Fprintf(out, "Removed: %s in %s.\n", c.Done(), time.Since(start).Round(time.Microsecond))
		return nil
	})
	// -c is accepted for symmetry with plan/apply; down removes all that
	// tunroute owns whatever the config says.
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed and change nothing")
	return cmd
}
