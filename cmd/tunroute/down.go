package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newDownCmd(g *globalFlags) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove everything tunroute owns in the namespace (and the domains it made), and nothing else",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !dryRun {
				unlock, err := lockNamespace(g)
				if err != nil {
					return err
				}
				defer unlock()
			}
			s, err := openSession(g)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.planDown(); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprint(out, s.plan.Text())
			if dryRun || s.plan.Empty() {
				return nil
			}
			start := time.Now()
			s.progress = newProgressBar(cmd.ErrOrStderr())
			if err := s.apply(); err != nil {
				return fmt.Errorf("down failed, nothing was changed: %w", err)
			}
			_, _, del := s.plan.Counts()
			fmt.Fprintf(out, "Removed %d objects in %s.\n", del, time.Since(start).Round(time.Microsecond))
			return nil
		},
	}
	// -c is accepted for symmetry with plan/apply; down removes all that
	// tunroute owns whatever the config says.
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed and change nothing")
	return cmd
}
