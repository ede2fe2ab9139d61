package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/engine"
)

func newPlanCmd(g *globalFlags) *cobra.Command {
	cmd := g.engineCommand("plan", "Show what apply would change (exit 0: nothing to do, 2: changes pending)", func(cmd *cobra.Command, e *engine.Engine) error {
		s, c, err := e.PlanConfig(true)
		if err != nil {
			return err
		}
		defer s.Close()
		out := cmd.OutOrStdout()
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
