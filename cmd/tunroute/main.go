// Command tunroute makes the routing of a Linux host with VPNs
// declarative, explainable and leak-proof. This package only wires the
// command line; the work is done in internal/.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/engine"
)

// exitError carries a specific exit status (plan: 2 = changes pending).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

type globalFlags struct {
	config  string
	netns   string
	verbose bool
	// runDir holds runtime state: VPN facts from hooks, the pid of an
	// apply waiting for confirmation.
	runDir string
}

func main() {
	// A soft memory limit keeps a million-route apply near 250 MB (the
	// collector works harder instead); GOMEMLIMIT overrides it.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(250 << 20)
	}
	stopProfile := startProfile()
	root := newRootCmd()
	err := root.Execute()
	stopProfile()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "tunroute:", ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "tunroute:", err)
	os.Exit(1)
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "tunroute",
		Short:         "Declarative, explainable, leak-proof routing for Linux hosts with VPNs",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if g.verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what tunroute does")
	root.PersistentFlags().StringVar(&g.runDir, "run-dir", engine.DefaultRunDir, "runtime directory (VPN facts from hooks, pending confirmations)")
	root.AddCommand(
		newPlanCmd(g),
		newApplyCmd(g),
		newDownCmd(g),
		newStatusCmd(g),
		newSnapshotCmd(g),
		newConfirmCmd(g),
		newHookCmd(g),
		newExecCmd(g),
		newExplainCmd(g),
		newCheckCmd(g),
		newLabCmd(),
		newVersionCmd(),
		newImportCmd(),
		newRunCmd(g), newReloadCmd(g),
	)
	return root
}

// addConfigFlag adds -c/--config.
func addConfigFlag(cmd *cobra.Command, g *globalFlags) {
	cmd.Flags().StringVarP(&g.config, "config", "c", config.DefaultPath, "config file")
}

// addNetnsFlag adds --netns.
func addNetnsFlag(cmd *cobra.Command, g *globalFlags) {
	cmd.Flags().StringVar(&g.netns, "netns", "", "work in this named network namespace (/run/netns/NAME) instead of the current one")
}
