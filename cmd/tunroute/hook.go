package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/daemon"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/hook"
)

func newHookCmd(g *globalFlags) *cobra.Command {
	var vpnName string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "hook " + strings.Join(hook.Names(), "|") + " [VERB] [ARGS...]",
		Short: "Called by a VPN daemon: record what it reports and apply the config",
		Long: `tunroute hook turns a VPN daemon's script environment into runtime facts
(tunnel device and addresses, gateway inside the tunnel, the server's real
address and port, the original gateway, pushed DNS), stores them under the
runtime directory and applies the config with them. A down verb forgets the
connection's facts and applies again: what went through it is withdrawn,
the kill switch stays.

OpenVPN (route-noexec recommended, script-security 2):
    up "/usr/local/sbin/tunroute hook openvpn"       route-up "/usr/local/sbin/tunroute hook openvpn"
    route-pre-down "/usr/local/sbin/tunroute hook openvpn"    down "/usr/local/sbin/tunroute hook openvpn"
  The verb comes from script_type; the arguments OpenVPN adds are ignored.
tinc: in tinc-up, tinc-down, host-up, host-down (and subnet-up/-down):
    exec /usr/local/sbin/tunroute hook tinc tinc-up       (and so on, one verb per script)

strongSwan: charon's updown script (swanctl.conf children's updown =, or
ipsec.conf's leftupdown =):
    updown = /usr/local/sbin/tunroute hook strongswan
  Every PLUTO_* variable is checked; the verb comes from PLUTO_VERB. The vpn is
  the one named by --vpn, TUNROUTE_VPN or PLUTO_CONNECTION, or the config's only
  strongswan vpn.

The VPN is the config's vpn of that type, or the one named by --vpn or by the
environment variable TUNROUTE_VPN (OpenVPN: setenv TUNROUTE_VPN work).

With tunroute run working on the namespace, the hook checks its call, hands
it to the daemon over its control socket and returns when the daemon has
applied it (the daemon's config must be the hook's -c). A daemon that does
not answer within --daemon-timeout fails the hook: it does not apply behind
the daemon's back. Without a daemon, the hook applies by itself.`,
		Args:               cobra.MinimumNArgs(1),
		DisableFlagParsing: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHook(cmd, g, vpnName, timeout, args)
		},
	}
	cmd.Flags().StringVar(&vpnName, "vpn", "", "the config's name for this connection")
	cmd.Flags().DurationVar(&timeout, "daemon-timeout", daemon.DefaultHookTimeout, "how long to wait for tunroute run to apply the call")
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	return cmd
}

func runHook(cmd *cobra.Command, g *globalFlags, vpnName string, timeout time.Duration, args []string) error {
	kind, err := hook.Lookup(args[0])
	if err != nil {
		return fmt.Errorf("hook: %w", err)
	}
	e, err := g.engine()
	if err != nil {
		return fmt.Errorf("hook %s: %w", kind.Name(), err)
	}
	// Checked here, whoever applies: a malformed or hostile environment
	// never reaches the daemon.
	call, cfg, err := e.ValidateHook(engine.HookCall{Kind: kind, Args: args[1:], Env: hook.ParseEnv(os.Environ()), VPN: vpnName})
	if err != nil || call.Ignored {
		return err
	}
	out := cmd.OutOrStdout()
	ans, err := daemon.AskHook(e.RunDir, e.Netns, call, timeout)
	if !errors.Is(err, daemon.ErrNotRunning) {
		if ans != nil && ans.Said != "" {
			fmt.Fprintf(out, "tunroute: %s\n", ans.Said)
			fmt.Fprint(out, ans.Plan)
			printNotes(out, ans.Notes)
		}
		return err
	}
	res, err := e.RecordHook(cfg, call)
	if res == nil || res.Ignored {
		return err
	}
	fmt.Fprintf(out, "tunroute: %s\n", res.Said)
	if res.Change != nil {
		fmt.Fprint(out, res.Change.Text())
		printNotes(out, res.Change.Notes)
	}
	return err
}
