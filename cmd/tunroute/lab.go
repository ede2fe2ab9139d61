package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/lab"
)

var labPrefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$`)

// newLabCmd is `tunroute lab up|down|demo` (and the hidden `lab serve`).
func newLabCmd() *cobra.Command {
	var prefix, runDir string
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "A self-contained demo topology in network namespaces",
		Long: `tunroute lab builds four network namespaces (client, isp, vpnserver, inet)
joined by veth pairs, with a WireGuard VPN (wireguard-go, run by tunroute
itself) between client and vpnserver, and an echo server in inet that tells
each connection where it came from. It needs root and nothing but this binary.

  client    eth0 10.1.0.2/24     2001:db8:1::2/64    wg0 10.30.0.2/24 2001:db8:30::2/64
  isp       c0 10.1.0.1  s0 198.51.100.1  i0 203.0.113.1  (and ::1 of each v6 prefix)
  vpnserver eth0 198.51.100.2/24 2001:db8:51::2/64   wg0 10.30.0.1/24 2001:db8:30::1/64
  inet      eth0 203.0.113.2/24  2001:db8:203::2/64  echo server on TCP 8080

The host's own network namespace is never changed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&prefix, "prefix", lab.DefaultPrefix, "prefix of the namespace names")
	cmd.PersistentFlags().StringVar(&runDir, "run-dir", lab.DefaultRunDir, "directory for the pid file, log and control sockets")
	cmd.PersistentFlags().MarkHidden("run-dir")

	newLab := func() (*lab.Lab, error) {
		if !labPrefixRE.MatchString(prefix) {
			return nil, fmt.Errorf("--prefix %q: use letters, digits, '.', '_' and '-' (at most 40)", prefix)
		}
		if os.Geteuid() != 0 {
			return nil, errors.New("tunroute lab needs root (it creates network namespaces)")
		}
		return &lab.Lab{Prefix: prefix, RunDir: runDir}, nil
	}
	// withLab makes the RunE of a command on the lab the flags name.
	withLab := func(run func(cmd *cobra.Command, l *lab.Lab) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			l, err := newLab()
			if err != nil {
				return err
			}
			return run(cmd, l)
		}
	}
	// runSelf makes the RunE of a command that starts this binary again:
	// it builds the lab, finds the binary, and stops on SIGINT or SIGTERM.
	runSelf := func(run func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, exe string) error) func(*cobra.Command, []string) error {
		return withLab(func(cmd *cobra.Command, l *lab.Lab) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("cannot find my own binary: %w", err)
			}
			ctx, stop := untilSignal(cmd.Context())
			defer stop()
			return run(ctx, cmd, l, exe)
		})
	}

	up := &cobra.Command{
		Use:          "up",
		Short:        "Build the lab and start its VPN (in a background process)",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: runSelf(func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, exe string) error {
			info, err := l.Up(ctx, exec.Command(exe, l.ServeArgs()...))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "lab up: namespaces %s{client,isp,vpnserver,inet}\n", l.Prefix)
			fmt.Fprintf(out, "  built in %v; WireGuard handshake after %s; serve process %d\n",
				info.Build.Round(time.Millisecond), info.Handshake, info.PID)
			fmt.Fprintf(out, "  try:  tunroute plan -c examples/lab-demo.yaml --netns %s\n", l.NS(lab.Client))
			fmt.Fprintf(out, "        ip netns exec %s bash\n", l.NS(lab.Client))
			fmt.Fprintf(out, "  stop: tunroute lab down%s\n", prefixArg(l.Prefix))
			return nil
		}),
	}

	down := &cobra.Command{
		Use:          "down",
		Short:        "Stop the lab's VPN and delete its namespaces",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: withLab(func(cmd *cobra.Command, l *lab.Lab) error {
			rep, err := l.Down(cmd.Context())
			out := cmd.OutOrStdout()
			for _, n := range rep.Notes {
				fmt.Fprintf(out, "note: %s\n", n)
			}
			if rep.Nothing() {
				fmt.Fprintf(out, "no lab with prefix %q: nothing to do\n", l.Prefix)
			} else {
				if rep.Stopped != 0 {
					fmt.Fprintf(out, "stopped serve process %d\n", rep.Stopped)
				}
				for _, ns := range rep.Namespaces {
					fmt.Fprintf(out, "deleted netns %s\n", ns)
				}
			}
			return err
		}),
	}

	var keep bool
	var config string
	demo := &cobra.Command{
		Use:   "demo",
		Short: "Build the lab, apply examples/lab-demo.yaml in the client, prove the paths with traffic",
		Long: `demo builds the lab, then runs this binary's plan, apply and status with the
demo config (dual identity + gateway redirect of the default route;
examples/lab-demo.yaml, built in) in the client namespace, proves each path
with real traffic (PASS or FAIL per check), runs down, checks that the
client's routing is back to what it was, and removes the lab unless --keep.
It exits non-zero if any check fails.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: runSelf(func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, exe string) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			return l.Demo(ctx, lab.DemoOptions{Exe: exe, ConfigPath: config, Keep: keep, Out: cmd.OutOrStdout()})
		}),
	}
	demo.Flags().BoolVar(&keep, "keep", false, "leave the lab up at the end")
	demo.Flags().StringVarP(&config, "config", "c", "", "config to apply instead of the built-in examples/lab-demo.yaml")

	serve := &cobra.Command{
		Use:          "serve",
		Short:        "Hold the lab's WireGuard devices (started by lab up)",
		Hidden:       true,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: withLab(func(cmd *cobra.Command, l *lab.Lab) error {
			ctx, stop := untilSignal(context.Background())
			defer stop()
			return l.Serve(ctx, lab.ReadyFile(), cmd.ErrOrStderr())
		}),
	}

	cmd.AddCommand(up, down, demo, serve)
	return cmd
}

// untilSignal is parent until SIGINT or SIGTERM.
func untilSignal(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

func prefixArg(p string) string {
	if p == lab.DefaultPrefix {
		return ""
	}
	return " --prefix " + p
}
