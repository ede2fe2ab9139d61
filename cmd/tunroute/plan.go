package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newPlanCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change (exit 0: nothing to do, 2: changes pending)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
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
		},
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	return cmd
}
