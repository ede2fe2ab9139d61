package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/hook"
	"github.com/tunroute/tunroute/internal/kernel"
)

func newHookCmd(g *globalFlags) *cobra.Command {
	var vpnName string
	cmd := &cobra.Command{
		Use:   "hook openvpn|tinc [VERB] [ARGS...]",
		Short: "Called by a VPN daemon: record what it reports and apply the config",
		Long: `tunroute hook turns a VPN daemon's script environment into runtime facts
(tunnel device and addresses, gateway inside the tunnel, the server's real
address and port, the original gateway, pushed DNS), stores them under the
runtime directory and applies the config with them. A down verb forgets the
connection's facts and applies again: what went through it is withdrawn,
the kill switch stays.

OpenVPN (route-noexec recommended, script-security 2):
    up "/usr/sbin/tunroute hook openvpn"       route-up "/usr/sbin/tunroute hook openvpn"
    route-pre-down "/usr/sbin/tunroute hook openvpn"    down "/usr/sbin/tunroute hook openvpn"
  The verb comes from script_type; the arguments OpenVPN adds are ignored.
tinc: in tinc-up, tinc-down, host-up, host-down (and subnet-up/-down):
    exec /usr/sbin/tunroute hook tinc tinc-up       (and so on, one verb per script)

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
	typ := args[0]
	env := hook.ParseEnv(os.Environ())
	var ev hook.Event
	var verb string
	var err error
	switch typ {
	case "openvpn":
		verb = env["script_type"]
		if len(args) > 1 && verb == "" {
			verb = args[1] // called by hand: tunroute hook openvpn up
		}
		ev, err = hook.OpenVPNEvent(verb)
	case "tinc":
		if len(args) < 2 {
			return fmt.Errorf("hook tinc: give the script's verb (tinc-up, tinc-down, host-up, host-down, subnet-up, subnet-down)")
		}
		verb = args[1]
		ev, err = hook.TincEvent(verb)
	default:
		return fmt.Errorf("hook: %q is not a VPN tunroute has a hook for (openvpn, tinc)", typ)
	}
	if err != nil {
		return fmt.Errorf("hook %s: %w", typ, err)
	}
	if ev == hook.Ignore {
		return nil
	}
	if g.netns == "" {
		if g.netns, err = hookNamespace(); err != nil {
			return fmt.Errorf("hook %s: finding the network namespace: %w", typ, err)
		}
	}
	cfg, err := config.Load(g.config, config.Options{})
	if err != nil {
		return err
	}
	vpn, err := pickVPN(cfg, typ, vpnName, env)
	if err != nil {
		return fmt.Errorf("hook %s: %w", typ, err)
	}
	unlock, err := lockNamespace(g)
	if err != nil {
		return err
	}
	defer unlock()
	store, err := factsStore(g)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if ev == hook.Down {
		// The environment is checked as for an up verb, though a down
		// uses none of it: a malformed or hostile one means the call is
		// not the daemon's, and must not take the connection down.
		if err := checkEnv(typ, verb, vpn.Name, env); err != nil {
			return fmt.Errorf("hook %s %s: %w; nothing was changed", typ, verb, err)
		}
		if err := markDown(store, vpn.Name); err != nil {
			return err
		}
		fmt.Fprintf(out, "tunroute: vpn %s (%s %s) is down; withdrawing what went through it\n", vpn.Name, typ, verb)
	} else {
		v, err := vpnFacts(typ, verb, vpn.Name, env, store)
		if err != nil {
			return fmt.Errorf("hook %s %s: %w; nothing was changed", typ, verb, err)
		}
		v.Updated = time.Now().UTC().Round(time.Second)
		if err := store.Put(v); err != nil {
			return err
		}
		fmt.Fprintf(out, "tunroute: vpn %s (%s %s) on %s\n", vpn.Name, typ, verb, v.Device)
	}
	s, err := planConfig(g)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprint(out, s.plan.Text())
	printNotes(out, s.notes)
	if err := s.apply(); err != nil {
		return fmt.Errorf("apply failed, the kernel is unchanged (the facts stay recorded in %s): %w", store.Dir(), err)
	}
	return nil
}

func pickVPN(cfg *config.Config, typ, name string, env hook.Env) (*config.VPN, error) {
	fromEnv := false
	if name == "" {
		name, fromEnv = env["TUNROUTE_VPN"], true
	}
	if name != "" {
		var err error
		v := cfg.AnyVPN(name) // VPN names are unique across the top level and the domains
		switch {
		case v == nil:
			err = fmt.Errorf("the config %s has no vpn of that name", cfg.File)
		case v.Type != typ:
			err = fmt.Errorf("vpn %q is of type %s, not %s", name, v.Type, typ)
		}
		if err != nil && fromEnv {
			return nil, &hook.EnvError{Var: "TUNROUTE_VPN", Value: name, Msg: err.Error()}
		}
		if err != nil {
			return nil, fmt.Errorf("--vpn %q: %w", name, err)
		}
		return v, nil
	}
	var found []*config.VPN
	for _, v := range cfg.AllVPNs() {
		if v.Type == typ {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("the config %s has no vpn of type %s", cfg.File, typ)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("the config %s has several %s vpns; name one with --vpn or TUNROUTE_VPN", cfg.File, typ)
}

func vpnFacts(typ, verb, name string, env hook.Env, store *facts.Store) (*facts.VPN, error) {
	if typ == "openvpn" {
		return hook.OpenVPN(name, env)
	}
	all, err := store.All()
	if err != nil {
		return nil, err
	}
	prev := all[name]
	if verb == "tinc-up" {
		prev = nil // a new session
	}
	return hook.Tinc(name, verb, env, prev)
}

// checkEnv validates a down verb's environment as an up verb's would be.
func checkEnv(typ, verb, name string, env hook.Env) error {
	var err error
	if typ == "openvpn" {
		_, err = hook.OpenVPN(name, env)
	} else {
		_, err = hook.Tinc(name, verb, env, nil)
	}
	return err
}

// markDown keeps a down VPN's server endpoints (the kill switch must let
// the daemon reconnect) and drops everything else it reported.
func markDown(store *facts.Store, name string) error {
	all, err := store.All()
	if err != nil {
		return err
	}
	prev := all[name]
	if prev == nil {
		return nil
	}
	down := &facts.VPN{Name: prev.Name, Type: prev.Type, Device: prev.Device, Servers: prev.Servers,
		Down: true, Updated: time.Now().UTC().Round(time.Second)}
	return store.Put(down)
}

// hookNamespace is the namespace whose config the hook applies: the one
// the daemon runs in, or, for a daemon run inside a domain (tunroute exec),
// the namespace whose config has that domain.
func hookNamespace() (string, error) {
	cur, err := kernel.CurrentNamespace()
	if err != nil || cur == "" {
		return cur, err
	}
	owner, err := kernel.NamespaceOwner(cur)
	if err != nil {
		return "", err
	}
	switch {
	case owner == "":
		return cur, nil
	case owner == "host":
		return "", nil
	}
	return strings.TrimPrefix(owner, "netns "), nil
}
