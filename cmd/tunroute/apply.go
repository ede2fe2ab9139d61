package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func newApplyCmd(g *globalFlags) *cobra.Command {
	var dryRun bool
	var confirm time.Duration
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the namespace match the config, all-or-nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if confirm < 0 {
				return fmt.Errorf("--confirm: %s is negative", confirm)
			}
			if !dryRun {
				unlock, err := lockNamespace(g)
				if err != nil {
					return err
				}
				defer unlock()
			}
			s, err := planConfig(g)
			if err != nil {
				return err
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			fmt.Fprint(out, s.plan.Text())
			printNotes(out, s.notes)
			if dryRun || s.plan.Empty() {
				return nil
			}
			start := time.Now()
			s.progress = newProgressBar(cmd.ErrOrStderr())
			if err := s.apply(); err != nil {
				return fmt.Errorf("apply failed, nothing was changed: %w", err)
			}
			add, change, del := s.plan.Counts()
			fmt.Fprintf(out, "Applied: %d added, %d changed, %d deleted in %s.\n", add, change, del, time.Since(start).Round(time.Microsecond))
			if confirm > 0 {
				return waitConfirm(cmd, g, s, confirm)
			}
			return nil
		},
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().DurationVar(&confirm, "confirm", 0, "roll the change back unless confirmed within this time (e.g. 60s): press Enter, or run `tunroute confirm`")
	return cmd
}

// confirmPidFile holds the pid of an apply waiting for confirmation, per
// namespace, so `tunroute confirm` can signal it.
func confirmPidFile(g *globalFlags) string {
	name := "host"
	if g.netns != "" {
		name = "ns-" + g.netns
	}
	return filepath.Join(g.runDir, "confirm", name+".pid")
}

// waitConfirm keeps the change only if it is confirmed in time; a
// timeout, an interrupt or end of input rolls it back.
func waitConfirm(cmd *cobra.Command, g *globalFlags, s *session, timeout time.Duration) error {
	out := cmd.OutOrStdout()
	pidFile := confirmPidFile(g)
	if err := os.MkdirAll(filepath.Dir(pidFile), 0o755); err != nil {
		return rollback(out, s, fmt.Errorf("cannot wait for confirmation: %w", err))
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return rollback(out, s, fmt.Errorf("cannot wait for confirmation: %w", err))
	}
	defer os.Remove(pidFile)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	enter := make(chan bool, 1)
	go func() {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		enter <- err == nil || (err == io.EOF && line != "")
	}()
	nsWord := ""
	if g.netns != "" {
		nsWord = " --netns " + g.netns
	}
	fmt.Fprintf(out, "Confirm within %s or the change is rolled back: press Enter, or run `tunroute confirm%s`.\n", timeout, nsWord)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ok := <-enter:
			if ok {
				fmt.Fprintln(out, "Confirmed.")
				return nil
			}
			enter = nil // input closed: keep waiting for the signal or the timer
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				fmt.Fprintln(out, "Confirmed.")
				return nil
			}
			return rollback(out, s, fmt.Errorf("interrupted by %s before confirmation", sig))
		case <-timer.C:
			return rollback(out, s, fmt.Errorf("not confirmed within %s", timeout))
		}
	}
}

func rollback(out io.Writer, s *session, why error) error {
	if err := s.undo(); err != nil {
		return fmt.Errorf("%v; rolling back failed: %w", why, err)
	}
	fmt.Fprintln(out, "Rolled back.")
	return fmt.Errorf("%v: the change was rolled back", why)
}

func newConfirmCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "confirm",
		Short: "Confirm a pending `apply --confirm` so it is kept",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pidFile := confirmPidFile(g)
			data, err := os.ReadFile(pidFile)
			if err != nil {
				return fmt.Errorf("no apply is waiting for confirmation (%s): %w", pidFile, err)
			}
			pid, err := strconv.Atoi(string(trimNL(data)))
			if err != nil || pid <= 0 {
				return fmt.Errorf("%s: %q is not a process id", pidFile, data)
			}
			if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || string(trimNL(comm)) != "tunroute" {
				return fmt.Errorf("%s: process %d is not a waiting tunroute", pidFile, pid)
			}
			if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
				return fmt.Errorf("signalling process %d: %w", pid, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Confirmed.")
			return nil
		},
	}
	addNetnsFlag(cmd, g)
	return cmd
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
