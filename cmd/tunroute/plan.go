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
			s, err := planConfig(g)
			if err != nil {
				return err
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			fmt.Fprint(out, s.plan.Text())
			printNotes(out, s.notes)
			if !s.plan.Empty() {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	return cmd
}

func printNotes(out interface{ Write([]byte) (int, error) }, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
}
