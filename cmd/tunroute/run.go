package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/daemon"
	"github.com/tunroute/tunroute/internal/engine"
)

func newRunCmd(g *globalFlags) *cobra.Command {
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Apply the config, then keep the kernel matching it while the network changes (a daemon)",
		Long: `Apply the config, then watch the kernel (links, addresses, routes, rules,
nftables) in the namespace and in every routing domain, and put back what
another program deletes or changes, within milliseconds. An object that
keeps being undone is repaired with back-off, and the log names it and
what fights over it. SIGHUP or ` + "`tunroute reload`" + ` reads the config again;
` + "`tunroute status`" + ` shows the daemon's figures. Stopping or killing the
daemon changes nothing in the kernel. --metrics ADDR serves Prometheus
metrics on http://ADDR/metrics.`,
		Args: cobra.NoArgs,
		RunE: g.withEngine(func(cmd *cobra.Command, e *engine.Engine) error {
			if metricsAddr != "" {
				if _, err := daemon.ParseMetricsAddr(metricsAddr); err != nil {
					return err
				}
			}
			log := daemonLogger(g.verbose)
			n := daemon.NewNotifier()
			d := daemon.New(daemon.Options{Engine: e, Log: log, Notify: func(s string) { n.Notify(s) }, Listen: true})
			ctx, stop := untilSignal(context.Background())
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			if metricsAddr != "" {
				at, err := d.ServeMetrics(ctx, metricsAddr)
				if err != nil {
					return err
				}
				log.Info("serving metrics", "url", "http://"+at.String()+"/metrics")
			}
			go func() {
				for range hup {
					if err := d.Reload(); err != nil {
						log.Error("reload failed", "err", err)
					}
				}
			}()
			if iv := daemon.WatchdogInterval(); iv > 0 {
				go n.KeepAlive(ctx, iv, func() bool { return d.Alive(iv) })
			}
			return d.Run(ctx)
		}),
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics on http://`ADDR`/metrics (ADDR: e.g. 127.0.0.1:9712 or [::1]:9712)")
	return cmd
}

// daemonLogger logs text on a terminal and, under systemd (journald
// adds the time), without time stamps.
func daemonLogger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice == 0 && os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func newReloadCmd(g *globalFlags) *cobra.Command {
	cmd := g.engineCommand("reload", "Make the running daemon (tunroute run) read the config again and apply it", func(cmd *cobra.Command, e *engine.Engine) error {
		st, err := daemon.Ask(e.RunDir, e.Netns, "reload")
		if err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), "Reloaded.")
		fmt.Fprint(cmd.OutOrStdout(), st.Text())
		return nil
	})
	addNetnsFlag(cmd, g)
	return cmd
}

// writeDaemonStatus adds what the daemon working on the namespace says,
// when one runs (`tunroute run`).
func writeDaemonStatus(out io.Writer, e *engine.Engine) {
	st, err := daemon.Ask(e.RunDir, e.Netns, "status")
	switch {
	case errors.Is(err, daemon.ErrNotRunning):
		fmt.Fprintln(out, "daemon: not running (`tunroute run` keeps the kernel matching the config)")
	case err != nil:
		fmt.Fprintf(out, "daemon: %v\n", err)
	default:
		fmt.Fprint(out, st.Text())
	}
}
