package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/hook"
)

func newHookCmd(g *globalFlags) *cobra.Command {
	var vpnName string
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
environment variable TUNROUTE_VPN (OpenVPN: setenv TUNROUTE_VPN work).`,
		Args:               cobra.MinimumNArgs(1),
		DisableFlagParsing: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHook(cmd, g, vpnName, args)
		},
	}
	cmd.Flags().StringVar(&vpnName, "vpn", "", "the config's name for this connection")
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	return cmd
}

func runHook(cmd *cobra.Command, g *globalFlags, vpnName string, args []string) error {
	kind, err := hook.Lookup(args[0])
	if err != nil {
		return fmt.Errorf("hook: %w", err)
	}
	e, err := g.engine()
	if err != nil {
		return fmt.Errorf("hook %s: %w", kind.Name(), err)
	}
	res, err := e.Hook(engine.HookCall{Kind: kind, Args: args[1:], Env: hook.ParseEnv(os.Environ()), VPN: vpnName})
	if res == nil || res.Ignored {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "tunroute: %s\n", res.Said)
	if res.Change != nil {
		fmt.Fprint(out, res.Change.Text())
		printNotes(out, res.Change.Notes)
	}
	return err
}
