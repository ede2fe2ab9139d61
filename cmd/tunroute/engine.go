package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/daemon"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/plan"
)

// engine returns the pipeline for the command's namespace: --netns, or
// the namespace tunroute finds itself in (`ip netns exec NS tunroute ...`
// works on NS; inside a routing domain, on the namespace whose config
// has the domain). Every command decides the same way.
func (g *globalFlags) engine() (*engine.Engine, error) {
	e := &engine.Engine{Host: engine.LiveHost{}, Netns: g.netns, ConfigPath: g.config, RunDir: g.runDir}
	if g.netns == "" {
		ns, err := engine.DetectNamespace(e.Host)
		if err != nil {
			return nil, fmt.Errorf("finding the network namespace (give --netns): %w", err)
		}
		e.Netns = ns
	}
	return e, nil
}

// withEngine makes a command's RunE that finds the command's engine (see
// engine) and hands it to run.
func (g *globalFlags) withEngine(run func(cmd *cobra.Command, e *engine.Engine) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		e, err := g.engine()
		if err != nil {
			return err
		}
		return run(cmd, e)
	}
}

// engineCommand is a command without arguments that works on the engine
// of the global flags.
func (g *globalFlags) engineCommand(use, short string, run func(cmd *cobra.Command, e *engine.Engine) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: g.withEngine(run)}
}

// applyChange applies a planned change with a progress bar on a terminal
// and says what was done.
func applyChange(cmd *cobra.Command, e *engine.Engine, s *engine.Session, c *engine.Change, what string) (*plan.Journal, error) {
	// A daemon holds the kill switch's table (another process may not
	// change it): it lets it go until this command, which holds the
	// engine lock, is done.
	if err := daemon.ReleaseFirewall(e.RunDir, e.Netns); err != nil {
		return nil, fmt.Errorf("%s: nothing was changed: %w", what, err)
	}
	bar := newProgressBar(cmd.ErrOrStderr())
	if bar != nil {
		e.Progress = bar.update
	}
	j, err := s.Apply(c)
	bar.finish()
	if err != nil {
		return nil, applyFailed(what, err)
	}
	return j, nil
}

// applyFailed words a failed apply: nothing changed, unless the rollback
// failed too, and then exactly what remains.
func applyFailed(what string, err error) error {
	var rb *plan.RollbackError
	if errors.As(err, &rb) {
		return fmt.Errorf("%s failed and rolling it back failed too: %w", what, err)
	}
	return fmt.Errorf("%s failed, nothing was changed: %w", what, err)
}

func printNotes(out io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
}
