package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/plan"
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
	Pending    []string           `json:"pending,omitempty"`
	ConfigErr  string             `json:"config_error,omitempty"`
	Identities []compile.Identity `json:"identities,omitempty"`
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what tunroute owns in the namespace and whether it matches the config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(g)
			if err != nil {
				return err
			}
			defer s.Close()
			r := buildStatus(g, s)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			writeStatus(cmd.OutOrStdout(), r)
			return nil
		},
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func buildStatus(g *globalFlags, s *session) *statusReport {
	obs := s.observed
	r := &statusReport{Namespace: obs.Namespace, Links: []state.Link{}, Addrs: []state.Addr{},
		Routes: []state.Route{}, Rules: []state.Rule{}}
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
	cfg, err := config.Load(g.config, config.Options{})
	if errors.Is(err, fs.ErrNotExist) {
		return r
	}
	r.Config = g.config
	if err != nil {
		r.ConfigErr = err.Error()
		return r
	}
	vpns, err := loadFacts(g)
	if err != nil {
		r.ConfigErr = err.Error()
		return r
	}
	res, err := compile.Compile(cfg, obs, vpns)
	if err != nil {
		r.ConfigErr = err.Error()
		return r
	}
	r.Identities = res.Identities
	p, err := plan.Diff(res.State, obs)
	if err != nil {
		r.ConfigErr = err.Error()
		return r
	}
	inSync := p.Empty()
	r.InSync = &inSync
	for _, op := range p.Ops {
		r.Pending = append(r.Pending, op.String())
	}
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
}

func orDefault(s string) string {
	if s == "" {
		return config.DefaultPath
	}
	return s
}
