package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/netnsname"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/verify"
)

func newApplyCmd(g *globalFlags) *cobra.Command {
	var dryRun, check bool
	var confirm time.Duration
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the namespace match the config, all-or-nothing",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if confirm < 0 {
				return fmt.Errorf("--confirm: %s is negative", confirm)
			}
			return nil
		},
		RunE: g.withEngine(func(cmd *cobra.Command, e *engine.Engine) error {
			if !dryRun {
				unlock, err := e.Lock()
				if err != nil {
					return err
				}
				defer unlock()
			}
			s, c, err := e.PlanConfig(true)
			if err != nil {
				return err
			}
			defer s.Close()
			if check {
				// Prove the config's properties in every tunnel state
				// before anything is printed or changed.
				if err := verify.Gate(verify.Input{Config: c.Config, Observed: s.Top(), Facts: c.VPNs}); err != nil {
					var ge *verify.GateError
					if errors.As(err, &ge) {
						fmt.Fprintln(cmd.ErrOrStderr(), ge.Error())
						return &exitError{code: 3}
					}
					return err
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprint(out, c.Text())
			printNotes(out, c.Notes)
			if dryRun || c.Empty() {
				return nil
			}
			var w *engine.ConfirmWaiter
			if confirm > 0 {
				// Listen before changing anything: a change nobody can
				// confirm is not made.
				if w, err = e.WaitConfirm(); err != nil {
					return fmt.Errorf("--confirm: cannot wait for confirmation, nothing was changed: %w", err)
				}
				defer w.Close()
			}
			start := time.Now()
			j, err := applyChange(cmd, e, s, c, "apply")
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Applied: %s in %s.\n", c.Done(), time.Since(start).Round(time.Microsecond))
			if w != nil {
				return waitConfirm(cmd, e, w, j, confirm)
			}
			return nil
		}),
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().BoolVar(&check, "check", false, "prove the config's properties (tunroute check) first; exit 3 and change nothing if one fails")
	cmd.Flags().DurationVar(&confirm, "confirm", 0, "roll the change back unless confirmed within this time (e.g. 60s): press Enter, or run `tunroute confirm`")
	return cmd
}

// waitConfirm keeps the change only if it is confirmed in time; a
// timeout, an interrupt or end of input rolls it back.
func waitConfirm(cmd *cobra.Command, e *engine.Engine, w *engine.ConfirmWaiter, j *plan.Journal, timeout time.Duration) error {
	out := cmd.OutOrStdout()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	enter := make(chan bool, 1)
	go func() {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		enter <- err == nil || (err == io.EOF && line != "")
	}()
	fmt.Fprintf(out, "Confirm within %s or the change is rolled back: press Enter, or run `tunroute confirm%s`.\n", timeout, netnsFlagFor(e.Netns))
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ok := <-enter:
			if ok {
				fmt.Fprintln(out, "Confirmed.")
				return nil
			}
			enter = nil // input closed: keep waiting for `tunroute confirm` or the timer
		case <-w.Confirmed:
			fmt.Fprintln(out, "Confirmed.")
			return nil
		case sig := <-sigs:
			return rollback(out, j, fmt.Errorf("interrupted by %s before confirmation", sig))
		case <-timer.C:
			return rollback(out, j, fmt.Errorf("not confirmed within %s", timeout))
		}
	}
}

// netnsFlagFor is the --netns argument that names ns on a command line.
func netnsFlagFor(ns string) string {
	if ns == "" {
		return ""
	}
	return " --netns " + string(netnsname.Name(ns))
}

func rollback(out io.Writer, j *plan.Journal, why error) error {
	if err := j.Undo(); err != nil {
		return fmt.Errorf("%v; rolling back failed: %w", why, err)
	}
	fmt.Fprintln(out, "Rolled back.")
	return fmt.Errorf("%v: the change was rolled back", why)
}

func newConfirmCmd(g *globalFlags) *cobra.Command {
	cmd := g.engineCommand("confirm", "Confirm a pending `apply --confirm` so it is kept", func(cmd *cobra.Command, e *engine.Engine) error {
		if err := e.Confirm(); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "Confirmed.")
		return nil
	})
	addNetnsFlag(cmd, g)
	return cmd
}
