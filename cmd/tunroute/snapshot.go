package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newSnapshotCmd(g *globalFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Write the namespace's routing state as JSON (for explain --state, bug reports, diffs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			s, err := e.Observe(false)
			if err != nil {
				return err
			}
			defer s.Close()
			var buf bytes.Buffer
			if err := s.Top().Write(&buf); err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(output, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			return nil
		},
	}
	addNetnsFlag(cmd, g)
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}
