package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/engine"
)

func newSnapshotCmd(g *globalFlags) *cobra.Command {
	var output string
	cmd := g.engineCommand("snapshot", "Write the namespace's routing state as JSON (for explain --state, bug reports, diffs)", func(cmd *cobra.Command, e *engine.Engine) error {
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
	})
	addNetnsFlag(cmd, g)
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}
