package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/bgp"
	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/daemon"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/state"
)

// statusReport is `status --json`.
type statusReport struct {
	Namespace string        `json:"namespace"`
	Links     []state.Link  `json:"links"`
	Addrs     []state.Addr  `json:"addrs"`
	Routes    []state.Route `json:"routes"`
	Rules     []state.Rule  `json:"rules"`
	// Config is the config file compared against, "" if none was read.
	Config string `json:"config,omitempty"`
	// InSync: the owned objects equal what the config asks for.
	InSync *bool `json:"in_sync,omitempty"`
	// Pending lists the changes apply would make.
	Pending   []string `json:"pending,omitempty"`
	ConfigErr string   `json:"config_error,omitempty"`
	// WireGuard is every WireGuard peer's latest handshake and what it
	// says of the tunnel.
	WireGuard []state.WGPeerHealth `json:"wireguard,omitempty"`
	// BGP are the speakers of the routing domains: sessions, routes.
	BGP []bgp.InstanceStatus `json:"bgp,omitempty"`
	// Groups say which members of each failover or balance group carry
	// the traffic, and why (from the health checks' last verdict, with
	// each member's recorded health).
	Groups []compile.GroupView `json:"groups,omitempty"`
	// TakenBack lists tunroute's routes another tool holds now, and who
	// (apply takes them back: settings.take_back_routes).
	TakenBack []string `json:"taken_back,omitempty"`
	// Notes are the config's remarks (as plan prints them).
	Notes      []string           `json:"notes,omitempty"`
	Identities []compile.Identity `json:"identities,omitempty"`
	// Firewall is tunroute's nftables table, with its counters.
	Firewall *state.Firewall `json:"firewall,omitempty"`
	// Domains are the namespaces tunroute made for this config's domains.
	Domains []domainStatus `json:"domains,omitempty"`
	// Daemon is what `tunroute run` reports, when it runs.
	Daemon *daemon.Status `json:"daemon,omitempty"`
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := g.engineCommand("status", "Show what tunroute owns in the namespace and whether it matches the config", func(cmd *cobra.Command, e *engine.Engine) error {
		// The config and facts are read once: they say what to read
		// of the kernel, and what to compare it with.
		cfg, cfgErr := e.LoadConfig()
		var f *engine.Facts
		if cfgErr == nil {
			f, cfgErr = e.LoadFacts()
		}
		var s *engine.Session
		var err error
		if cfgErr == nil {
			s, err = e.ObserveForPlan(cfg, f, false)
		} else {
			s, err = e.Observe(false)
		}
		if err != nil {
			return err
		}
		defer s.Close()
		r := buildStatus(e, s, cfg, f, cfgErr)
		r.WireGuard = state.WireGuardHealth(s.Top(), time.Now())
		if r.BGP, err = e.BGPStatus(cmd.Context()); err != nil {
			return err
		}
		if asJSON {
			r.Daemon, _ = daemon.Ask(e.RunDir, e.Netns, "status") // none when it does not run
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		}
		writeStatus(cmd.OutOrStdout(), r)
		writeDaemonStatus(cmd.OutOrStdout(), e)
		return nil
	})
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// domainStatus summarises one domain namespace.
type domainStatus struct {
	Namespace string          `json:"namespace"`
	Links     int             `json:"links"`
	Addrs     int             `json:"addrs"`
	Routes    int             `json:"routes"`
	Rules     int             `json:"rules"`
	Firewall  *state.Firewall `json:"firewall,omitempty"`
}

// buildStatus reports what tunroute owns, and how it compares with cfg
// compiled with the facts f (cfgErr: why there is no config to compare).
func buildStatus(e *engine.Engine, s *engine.Session, cfg *config.Config, f *engine.Facts, cfgErr error) *statusReport {
	obs := s.Top()
	r := &statusReport{Namespace: obs.Namespace, Links: []state.Link{}, Addrs: []state.Addr{},
		Routes: []state.Route{}, Rules: []state.Rule{}, Firewall: obs.Firewall}
	for _, ns := range s.Domains {
		o := s.Observed[ns]
		d := domainStatus{Namespace: ns, Firewall: o.Firewall}
		for i := range o.Links {
			if o.Links[i].Owned() {
				d.Links++
			}
		}
		for i := range o.Addrs {
			if o.Addrs[i].Owned() {
				d.Addrs++
			}
		}
		for i := range o.Routes {
			if o.Routes[i].Owned() {
				d.Routes++
			}
		}
		for i := range o.Rules {
			if o.Rules[i].Owned() {
				d.Rules++
			}
		}
		r.Domains = append(r.Domains, d)
	}
	for i := range obs.Links {
		if obs.Links[i].Owned() {
			r.Links = append(r.Links, obs.Links[i])
		}
	}
	for i := range obs.Addrs {
		if obs.Addrs[i].Owned() {
			r.Addrs = append(r.Addrs, obs.Addrs[i])
		}
	}
	for i := range obs.Routes {
		if obs.Routes[i].Owned() {
			r.Routes = append(r.Routes, obs.Routes[i])
		}
	}
	for i := range obs.Rules {
		if obs.Rules[i].Owned() {
			r.Rules = append(r.Rules, obs.Rules[i])
		}
	}
	if errors.Is(cfgErr, fs.ErrNotExist) {
		return r
	}
	r.Config = e.ConfigFile()
	if cfgErr != nil {
		r.ConfigErr = cfgErr.Error()
		return r
	}
	c, err := s.Plan(cfg, f)
	if err != nil {
		r.ConfigErr = err.Error()
		return r
	}
	r.Identities = c.Compiled().Identities
	if gs := c.Compiled().Groups; len(gs) > 0 {
		r.Groups = compile.DescribeGroups(cfg, gs, f.Verdicts)
	}
	r.Notes = c.Notes
	inSync := c.Empty()
	r.InSync = &inSync
	r.Pending = c.Lines()
	r.TakenBack = c.Plan.TakenBack
	return r
}

func writeStatus(out io.Writer, r *statusReport) {
	where := "host namespace"
	if r.Namespace != "" {
		where = "namespace " + r.Namespace
	}
	fmt.Fprintf(out, "tunroute in %s: %d links, %d addresses, %d routes, %d rules owned\n",
		where, len(r.Links), len(r.Addrs), len(r.Routes), len(r.Rules))
	for _, id := range r.Identities {
		fmt.Fprintf(out, "identity %s: dev %s, table %d, rule priority %d, addresses %v", id.Name, id.Device, id.Table, id.Priority, id.Addrs)
		if id.Gateway4.IsValid() || id.Gateway6.IsValid() {
			fmt.Fprintf(out, ", gateway")
			for _, gw := range []interface{ IsValid() bool }{id.Gateway4, id.Gateway6} {
				if gw.IsValid() {
					fmt.Fprintf(out, " %v", gw)
				}
			}
		}
		fmt.Fprintln(out)
	}
	for i := range r.Links {
		fmt.Fprintf(out, "  link  %s\n", r.Links[i].String())
	}
	for i := range r.Addrs {
		fmt.Fprintf(out, "  addr  %s\n", r.Addrs[i].String())
	}
	for i := range r.Rules {
		fmt.Fprintf(out, "  rule  %s\n", r.Rules[i].String())
	}
	for i := range r.Routes {
		fmt.Fprintf(out, "  route %s\n", r.Routes[i].String())
	}
	writeCounters(out, "", r.Firewall)
	for _, d := range r.Domains {
		fmt.Fprintf(out, "domain namespace %s: %d links, %d addresses, %d routes, %d rules owned\n", d.Namespace, d.Links, d.Addrs, d.Routes, d.Rules)
		writeCounters(out, "  ", d.Firewall)
	}
	switch {
	case r.ConfigErr != "":
		fmt.Fprintf(out, "config: %s\n", r.ConfigErr)
	case r.InSync == nil:
		fmt.Fprintf(out, "config: none found (%s)\n", orDefault(r.Config))
	case *r.InSync:
		fmt.Fprintf(out, "config %s: in sync\n", r.Config)
	default:
		fmt.Fprintf(out, "config %s: %d changes pending (run `tunroute plan`)\n", r.Config, len(r.Pending))
	}
	for i := range r.Groups {
		fmt.Fprintln(out, r.Groups[i].Text())
	}
	for _, t := range r.TakenBack {
		fmt.Fprintf(out, "held by another tool (apply takes it back): %s\n", t)
	}
	for _, h := range r.WireGuard {
		fmt.Fprintf(out, "wireguard %s\n", h.String())
	}
	fmt.Fprint(out, bgp.StatusText(r.BGP))
	printNotes(out, r.Notes)
}

func orDefault(s string) string {
	if s == "" {
		return config.DefaultPath
	}
	return s
}

// writeCounters shows what the firewall's counting rules have seen: the
// packets the kill switch dropped, by reason.
func writeCounters(out io.Writer, indent string, fw *state.Firewall) {
	if fw == nil {
		return
	}
	for _, c := range fw.Chains {
		for _, r := range c.Rules {
			if r.Counter {
				fmt.Fprintf(out, "%sfirewall %s: %s: %d packets, %d bytes\n", indent, c.Name, r.Comment, r.Packets, r.Bytes)
			}
		}
	}
}
