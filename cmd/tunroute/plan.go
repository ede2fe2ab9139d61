package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/daemon"
	"github.com/tunroute/tunroute/internal/engine"
)

func newPlanCmd(g *globalFlags) *cobra.Command {
	cmd := g.engineCommand("plan", "Show what apply would change (exit 0: nothing to do, 2: changes pending)", func(cmd *cobra.Command, e *engine.Engine) error {
		out := cmd.OutOrStdout()
		// With tunroute run working on the namespace and this config, it
		// answers: the same plan, from the routes its watchers keep.
		// Without an answer (no daemon, another config, a daemon that
		// does not answer) the command plans by itself.
		if a, err := askDaemonPlan(e); a != nil {
			if err != nil {
				return err // the plan failed there as it would here
			}
			fmt.Fprint(out, a.Plan)
			printNotes(out, a.Notes)
			if a.Pending {
				return &exitError{code: 2}
			}
			return nil
		}
		s, c, err := e.PlanConfig(true)
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprint(out, c.Text())
		printNotes(out, c.Notes)
		if !c.Empty() {
			return &exitError{code: 2}
		}
		return nil
	})
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	return cmd
}

// askDaemonPlan asks tunroute run for the plan of e's config; no answer
// (nil) when no daemon answers for it.
func askDaemonPlan(e *engine.Engine) (*daemon.PlanAnswer, error) {
	cfg, err := filepath.Abs(e.ConfigFile())
	if err != nil {
		return nil, err
	}
	return daemon.AskPlan(e.RunDir, e.Netns, cfg, daemonPlanTimeout)
}

// daemonPlanTimeout is how long a plan waits for the daemon's answer
// before it plans by itself.
const daemonPlanTimeout = 10 * time.Second
