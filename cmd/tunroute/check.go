package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/netnsname"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/verify"
)

// Exit statuses of check: 0 every property holds (--diff: no packet
// changes fate), 2 a property is broken (--diff: some packets change
// fate), 1 an error.
const exitBroken = 2

func newCheckCmd(g *globalFlags) *cobra.Command {
	var stateFile string
	var asJSON, diff, classes bool
	cmd := &cobra.Command{
		Use:   "check [-c FILE] [--netns NS | --state FILE] [--json] [--classes] | check --diff OLD NEW",
		Short: "Prove the config's policy for every packet, in every state the tunnels can be in",
		Long: `tunroute check cuts the whole packet space (source and destination addresses,
protocol, ports, uid, cgroup, mark, input device; IPv4 and IPv6; sent by this
host or forwarded) into classes that the routing rules, the routes and
tunroute's firewall treat alike, decides the fate of each class exactly (the
device it leaves by, in clear or through a tunnel, or what drops it), and
proves for every class, in every combination of the VPNs up and down:

  - nothing leaves in clear unless the kill switch's policy allows it;
  - what goes through a tunnel never falls back to clear when tunnels go down;
  - a tunnel's own transport never enters the tunnel;
  - DNS goes only to the declared resolvers;
  - traffic goes where the config sends it (identities, routes, selectors,
    the redirect), whatever other routes the host has;
  - the config's own assert list.

Each broken property prints one packet that breaks it, as a ready tunroute
explain command; on a live namespace the kernel confirms it. The config is
compiled against the live namespace (--netns) or a snapshot (--state), with
the VPN facts the hooks reported. Without -c, --state prints the classes of
the snapshot alone. --diff OLD NEW prints the classes of packets whose fate
changes from one config to the other.

Exit status: 0 every property holds (--diff: nothing changes), 2 a property
is broken (--diff: some packets change fate), 1 an error.`,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			// The namespace is found as every command finds it.
			e, err := g.engine()
			if err != nil {
				return err
			}
			g.netns = e.Netns
			if diff {
				if len(args) != 2 {
					return fmt.Errorf("check --diff: give the old and the new config (tunroute check --diff OLD.yaml NEW.yaml)")
				}
				return runCheckDiff(g, out, stateFile, args[0], args[1], asJSON)
			}
			if len(args) > 0 {
				return fmt.Errorf("check: unexpected argument %q (--diff compares two configs)", args[0])
			}
			if stateFile != "" && cmd.Flags().Changed("netns") {
				return fmt.Errorf("check: --state checks a snapshot; it cannot go with --netns")
			}
			if stateFile != "" && !cmd.Flags().Changed("config") {
				return runCheckState(out, stateFile, asJSON)
			}
			if !cmd.Flags().Changed("config") {
				if _, err := os.Stat(g.config); errors.Is(err, fs.ErrNotExist) {
					// No config: the live namespace's classes, as with --state.
					return runCheckLive(g, out, asJSON)
				}
			}
			return runCheck(g, out, stateFile, asJSON, classes)
		},
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().StringVar(&stateFile, "state", "", "a snapshot (tunroute snapshot -o FILE): with -c, the namespace the config applies to; alone, the state to check")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&diff, "diff", false, "compare two configs: the classes of packets whose fate changes")
	cmd.Flags().BoolVar(&classes, "classes", false, "also print the classes of packets and their fates (with every VPN up)")
	return cmd
}

// checkInput loads what check needs: the observed namespace (live, or a
// snapshot) and the VPN facts.
func checkInput(g *globalFlags, stateFile string) (*state.State, map[string]*facts.VPN, *kernel.Handle, error) {
	store, err := facts.Open(filepath.Join(g.runDir, "facts"), g.netns)
	if err != nil {
		return nil, nil, nil, err
	}
	fs, err := store.All()
	if err != nil {
		return nil, nil, nil, err
	}
	if stateFile != "" {
		st, err := state.LoadFile(stateFile)
		return st, fs, nil, err
	}
	h, err := kernel.Open(g.netns)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := h.Observe()
	if err != nil {
		h.Close()
		return nil, nil, nil, fmt.Errorf("reading %s: %w", netnsname.Word(g.netns), err)
	}
	return st, fs, h, nil
}

func runCheck(g *globalFlags, out io.Writer, stateFile string, asJSON, classes bool) error {
	cfg, err := config.Load(g.config, config.Options{})
	if err != nil {
		return err
	}
	obs, fs, h, err := checkInput(g, stateFile)
	if err != nil {
		return err
	}
	if h != nil {
		defer h.Close()
	}
	in := verify.Input{Config: cfg, Observed: obs, Facts: fs}
	scs, notes, err := verify.ScenariosOf(in)
	if err != nil {
		return err
	}
	rep, err := verify.Prove(scs, append(verify.Builtins(), verify.Assertions(cfg)...))
	if err != nil {
		return err
	}
	dom, err := verify.ProveDomains(cfg, obs, fs)
	if err != nil {
		return err
	}
	rep.Results = append(rep.Results, dom...)
	inDomains, err := verify.ProveDomainBuiltins(cfg, obs, fs)
	if err != nil {
		return err
	}
	rep.Results = append(rep.Results, inDomains...)
	explainVia := []string{"tunroute", "explain", "-c", g.config}
	if g.netns != "" {
		explainVia = append(explainVia, "--netns", g.netns)
	}
	for _, r := range rep.Results {
		for _, v := range r.Violations {
			if v.Explain != "" {
				continue // a domain's: ProveDomains wrote its explain command
			}
			v.Explain = strings.Join(append(append([]string(nil), explainVia...), v.Packet.ExplainArgs()...), " ")
			sc := scenarioNamed(scs, v.Scenario)
			if sc != nil && !sc.Current {
				// explain answers with the VPNs as the hooks last reported.
				v.Explain += "   # as it would be with " + v.Scenario
			}
			if h == nil || sc == nil || !sc.Current {
				continue
			}
			var kf verify.Fate
			l4 := verify.HasL4Rules(sc.State)
			if !l4 {
				kf = verify.KernelFate(&v.Packet, sc.State, sc.Tunnels, kernelRoute(h))
			}
			switch {
			case l4:
				v.Confirmed = "not asked: the kernel's route query cannot name a protocol or ports, which this state's rules select by"
			case verify.Agree(kf, v.FateOf()):
				v.Confirmed = "confirmed: the kernel routes it the same way (" + kf.String() + ")"
			default:
				v.Confirmed = "the kernel disagrees: " + kf.String() + " (is the config applied? tunroute plan)"
			}
		}
	}
	var cls []*verify.Class
	if classes {
		if cls, _, err = verify.Partition(scs[0]); err != nil {
			return err
		}
		for _, c := range cls {
			c.Explain = strings.Join(append(append([]string(nil), explainVia...), c.Example.ExplainArgs()...), " ")
		}
	}
	if asJSON {
		err = json.NewEncoder(out).Encode(struct {
			Config string `json:"config"`
			*verify.Report
			Notes   []string        `json:"notes,omitempty"`
			Classes []*verify.Class `json:"classes,omitempty"`
		}{g.config, rep, notes, cls})
	} else {
		printReport(out, g.config, rep, notes, cls)
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return &exitError{code: exitBroken}
	}
	return nil
}

func scenarioNamed(scs []verify.Scenario, name string) *verify.Scenario {
	for i := range scs {
		if scs[i].Name == name {
			return &scs[i]
		}
	}
	return nil
}

func kernelRoute(h *kernel.Handle) verify.KernelRoute {
	return func(q fib.Query) (verify.KernelAnswer, error) {
		var uid *uint32
		if q.HasUID {
			u := q.UID
			uid = &u
		}
		a, err := h.RouteGet(kernel.RouteQuery{Dst: q.To, Src: q.From, IIF: q.IIF, UID: uid, Mark: q.Mark})
		return verify.KernelAnswer{Dev: a.Dev, Src: a.Src, Type: a.Type}, err
	}
}

func printReport(out io.Writer, file string, rep *verify.Report, notes []string, cls []*verify.Class) {
	fmt.Fprintf(out, "%s: %d state%s of the tunnels (%s), %d classes of packets checked\n", file, len(rep.Scenarios),
		plural(len(rep.Scenarios)), strings.Join(rep.Scenarios, "; "), rep.Cells)
	for _, n := range notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	for _, r := range rep.Results {
		src := ""
		if r.Source != "built-in" {
			src = " (" + r.Source + ")"
		}
		if r.Holds {
			fmt.Fprintf(out, "holds   %s%s\n", r.Name, src)
			continue
		}
		fmt.Fprintf(out, "BROKEN  %s%s\n", r.Name, src)
		for _, v := range r.Violations {
			fmt.Fprintf(out, "        with %s: %s\n", v.Scenario, v.Example)
			fmt.Fprintf(out, "          %s: %s\n", v.Fate, v.Why)
			fmt.Fprintf(out, "          class: %s\n", v.Where)
			fmt.Fprintf(out, "          %s\n", v.Explain)
			if v.Confirmed != "" {
				fmt.Fprintf(out, "          %s\n", v.Confirmed)
			}
		}
	}
	if cls != nil {
		printClasses(out, cls, "classes (with every VPN up):")
	}
}

func printClasses(out io.Writer, cls []*verify.Class, heading string) {
	fmt.Fprintln(out, heading)
	for _, c := range cls {
		kind := "sent by this host"
		if c.Forwarded {
			kind = "forwarded"
		}
		fmt.Fprintf(out, "  IPv%d %s: %s (%d cells), e.g. %s\n", c.Family, kind, c.Fate, c.Cells, c.Example.String())
		if c.Explain != "" {
			fmt.Fprintf(out, "    %s\n", c.Explain)
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// runCheckLive prints the classes of the live namespace when there is no
// config to prove.
func runCheckLive(g *globalFlags, out io.Writer, asJSON bool) error {
	h, err := kernel.Open(g.netns)
	if err != nil {
		return err
	}
	defer h.Close()
	st, err := h.Observe()
	if err != nil {
		return fmt.Errorf("reading %s: %w", netnsname.Word(g.netns), err)
	}
	explainVia := []string{"tunroute", "explain"}
	if g.netns != "" {
		explainVia = append(explainVia, "--netns", g.netns)
	}
	return printStateClasses(out, netnsname.Word(g.netns)+" (no config: "+g.config+" does not exist)", st, explainVia, asJSON)
}

// runCheckState prints the classes of a snapshot alone: no config, so no
// properties; the tunnels are the devices the kill switch calls tunnels.
func runCheckState(out io.Writer, file string, asJSON bool) error {
	st, err := state.LoadFile(file)
	if err != nil {
		return err
	}
	return printStateClasses(out, file, st, []string{"tunroute", "explain", "--state", file}, asJSON)
}

func printStateClasses(out io.Writer, file string, st *state.State, explainVia []string, asJSON bool) error {
	sc := verify.Scenario{Name: "snapshot", State: st, Tunnels: verify.FirewallTunnels(st)}
	cls, cells, err := verify.Partition(sc)
	if err != nil {
		return err
	}
	for _, c := range cls {
		c.Explain = strings.Join(append(append([]string(nil), explainVia...), c.Example.ExplainArgs()...), " ")
	}
	if asJSON {
		return json.NewEncoder(out).Encode(struct {
			State   string          `json:"state"`
			Cells   int             `json:"cells"`
			Classes []*verify.Class `json:"classes"`
		}{file, cells, cls})
	}
	fmt.Fprintf(out, "%s: %d cells in %d classes\n", file, cells, len(cls))
	printClasses(out, cls, "classes:")
	return nil
}

func runCheckDiff(g *globalFlags, out io.Writer, stateFile, oldFile, newFile string, asJSON bool) error {
	var cfgs [2]*config.Config
	for i, f := range []string{oldFile, newFile} {
		c, err := config.Load(f, config.Options{})
		if err != nil {
			return err
		}
		cfgs[i] = c
	}
	obs, fs, h, err := checkInput(g, stateFile)
	if err != nil {
		return err
	}
	if h != nil {
		h.Close()
	}
	var scs [2]verify.Scenario
	for i, c := range cfgs {
		all, _, err := verify.ScenariosOf(verify.Input{Config: c, Observed: obs, Facts: fs})
		if err != nil {
			return fmt.Errorf("%s: %w", []string{oldFile, newFile}[i], err)
		}
		scs[i] = all[0]
		for _, sc := range all {
			if sc.Current {
				scs[i] = sc
			}
		}
	}
	changes, cells, err := verify.Diff(scs[0], scs[1])
	if err != nil {
		return err
	}
	for _, ch := range changes {
		ch.Explain = strings.Join(append([]string{"tunroute", "explain", "-c", newFile}, ch.Example.ExplainArgs()...), " ")
	}
	if asJSON {
		err = json.NewEncoder(out).Encode(struct {
			Old     string           `json:"old"`
			New     string           `json:"new"`
			Cells   int              `json:"cells"`
			Changes []*verify.Change `json:"changes"`
		}{oldFile, newFile, cells, changes})
	} else {
		fmt.Fprintf(out, "%s -> %s: %d of %d classes of packets change fate\n", oldFile, newFile, len(changes), cells)
		for _, ch := range changes {
			kind := "sent by this host"
			if ch.Forwarded {
				kind = "forwarded"
			}
			fmt.Fprintf(out, "  IPv%d %s: %s  ->  %s (%d cells)\n", ch.Family, kind, ch.Old, ch.New, ch.Cells)
			fmt.Fprintf(out, "    e.g. %s\n    class: %s\n    %s\n", ch.Packet, ch.Where, ch.Explain)
		}
	}
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		return &exitError{code: exitBroken}
	}
	return nil
}
