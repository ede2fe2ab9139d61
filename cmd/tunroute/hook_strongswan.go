package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/hook"
)

// registerStrongSwanHook routes `tunroute hook strongswan` to
// runStrongSwanHook. (Until hook.go's runHook has a case for it: then
// this goes.)
func registerStrongSwanHook(root *cobra.Command, g *globalFlags) {
	for _, c := range root.Commands() {
		if c.Name() != "hook" {
			continue
		}
		next := c.RunE
		c.Use = "hook openvpn|tinc|strongswan [VERB] [ARGS...]"
		c.Long += `
strongSwan: charon's updown script (swanctl.conf children's updown =, or
ipsec.conf's leftupdown =):
    updown = /usr/sbin/tunroute hook strongswan
  Every PLUTO_* variable is checked; the verb comes from PLUTO_VERB. The vpn is
  the one named by --vpn, TUNROUTE_VPN or PLUTO_CONNECTION, or the config's only
  strongswan vpn.`
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "strongswan" {
				vpn, _ := cmd.Flags().GetString("vpn")
				return runStrongSwanHook(cmd, g, vpn)
			}
			return next(cmd, args)
		}
	}
}

// runStrongSwanHook is `tunroute hook strongswan`, called by charon's
// updown plugin once per pair of traffic selectors that comes up or goes
// down. It records the connection's facts (hook.StrongSwan) and applies
// the config; a call repeated for the same pair (a rekey) leaves the
// facts as they were and the plan empty. strongSwan's own table 220 and
// its rule are not tunroute's and are never touched.
func runStrongSwanHook(cmd *cobra.Command, g *globalFlags, vpnName string) error {
	env := hook.ParseEnv(os.Environ())
	if _, err := hook.StrongSwanEvent(env); err != nil {
		return fmt.Errorf("hook strongswan: %w; nothing was changed", err)
	}
	var err error
	if g.netns == "" {
		if g.netns, err = hookNamespace(); err != nil {
			return fmt.Errorf("hook strongswan: finding the network namespace: %w", err)
		}
	}
	cfg, err := config.Load(g.config, config.Options{})
	if err != nil {
		return err
	}
	if vpnName == "" && env["TUNROUTE_VPN"] == "" {
		if v := cfg.AnyVPN(env["PLUTO_CONNECTION"]); v != nil && v.Type == "strongswan" {
			vpnName = v.Name
		}
	}
	vpn, err := pickVPN(cfg, "strongswan", vpnName, env)
	if err != nil {
		return fmt.Errorf("hook strongswan: %w", err)
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
	all, err := store.All()
	if err != nil {
		return err
	}
	v, ev, err := hook.StrongSwan(vpn.Name, env, all[vpn.Name], strongSwanSetup(cfg, vpn))
	if err != nil {
		return fmt.Errorf("hook strongswan %s: %w; nothing was changed", env["PLUTO_VERB"], err)
	}
	out := cmd.OutOrStdout()
	if ev == hook.Down {
		// Keep the peer's transport: the kill switch lets charon back in.
		v = &facts.VPN{Name: v.Name, Type: v.Type, Device: v.Device, Servers: v.Servers, Down: true}
		fmt.Fprintf(out, "tunroute: vpn %s (strongswan %s, its last pair of selectors) is down; withdrawing what went through it\n", vpn.Name, env["PLUTO_VERB"])
	} else {
		fmt.Fprintf(out, "tunroute: vpn %s (strongswan %s %s=%s) on %s\n", vpn.Name, env["PLUTO_VERB"], env["PLUTO_MY_CLIENT"], env["PLUTO_PEER_CLIENT"], v.Device)
	}
	v.Updated = time.Now().UTC().Round(time.Second)
	if err := store.Put(v); err != nil {
		return err
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

// strongSwanSetup is what the config says about a strongSwan
// connection's devices: its own device, and the route-based devices
// (xfrm by if_id, vti by key) of the config and its domains.
func strongSwanSetup(cfg *config.Config, vpn *config.VPN) hook.StrongSwanSetup {
	s := hook.StrongSwanSetup{Device: vpn.Device}
	add := func(c *config.Config) {
		for _, d := range c.Devices {
			switch d.Type {
			case "xfrm":
				s.Devices = append(s.Devices, hook.StrongSwanDevice{Name: d.Name, Kind: d.Type, IfID: d.IfID})
			case "vti", "vti6":
				s.Devices = append(s.Devices, hook.StrongSwanDevice{Name: d.Name, Kind: d.Type, Mark: d.OKey})
			}
		}
	}
	add(cfg)
	for _, dm := range cfg.Domains {
		add(dm.Config)
	}
	return s
}
