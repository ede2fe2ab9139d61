package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/state"
)

func newExplainCmd(g *globalFlags) *cobra.Command {
	var stateFile, batch string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain [--netns NS | --state FILE | -c FILE] [--json] [--batch FILE|-] [to] ADDR [from ADDR] [iif DEV] [oif DEV] [mark N] [ipproto P] [sport N] [dport N] [uid N] [tos N] [cgroup PATH]",
		Short: "Explain where a packet goes, exactly as the kernel would decide, and why",
		Long: `tunroute explain answers the question ip route get answers, with the same
words, from a live namespace (default), a saved snapshot (--state), or the
state a config would produce before it is applied (-c): the rules tried, the
route chosen, and the verdict. --json prints the keys of ip -j -d route get
plus "trace"; --batch reads one query per line and prints one JSON object per
line, in order. "cgroup PATH" (tunroute's own word) says which cgroup sends the
packet: tunroute's firewall marks a selected cgroup's packets, and explain
shows the mark, the rule it selects and the route. When the flow goes through
a failover or balance group (-c, or live with the config), explain says
which member carries it and why: each member's recorded health, as status
shows it ("group" in JSON). One query on a live namespace does not read a
table too big to read at once (a full BGP table) when the kernel's own
answer settles what that table decides; the answer and trace are the same.`,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Getenv("GOMEMLIMIT") == "" {
				// A big snapshot is read whole and at once: the soft limit
				// that keeps a million-route apply small only slows this.
				debug.SetMemoryLimit(math.MaxInt64)
			}
			if batch == "" && len(args) == 0 {
				return fmt.Errorf("explain: give a destination (tunroute explain to 203.0.113.7), or --batch FILE")
			}
			if batch != "" && len(args) > 0 {
				return fmt.Errorf("explain: give either a query or --batch, not both")
			}
			sources := 0
			for _, set := range []bool{stateFile != "", cmd.Flags().Changed("config"), cmd.Flags().Changed("netns")} {
				if set {
					sources++
				}
			}
			if stateFile != "" && sources > 1 {
				return fmt.Errorf("explain: --state explains a snapshot; it cannot go with --netns or -c")
			}
			// One query: parsed first, so that a live namespace is read
			// only as far as its answer needs, not a whole BGP table.
			var q fib.Query
			var cgroup string
			if batch == "" {
				var err error
				if args, cgroup, err = takeCgroup(args); err != nil {
					return err
				}
				if q, err = fib.ParseQuery(args); err != nil {
					return fmt.Errorf("explain: %w", err)
				}
			}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<16)
			defer out.Flush()
			if batch == "" && stateFile == "" && !cmd.Flags().Changed("config") {
				// One query to a live namespace: its big tables are not
				// read, the kernel says what they decide (engine.LookupLive).
				e, err := g.engine()
				if err != nil {
					return err
				}
				a, err := e.LookupLive(q, cgroup)
				if err != nil {
					return fmt.Errorf("%s: %w", e.Where(), err)
				}
				return printExplained(out, &a.Result, a.Marks, liveFlowGroups(e), asJSON)
			}
			var in io.Reader = cmd.InOrStdin()
			if batch != "" && batch != "-" {
				file, err := os.Open(batch)
				if err != nil {
					return fmt.Errorf("--batch: %w", err)
				}
				defer file.Close()
				in = file
			}
			if batch != "" && stateFile == "" && !cmd.Flags().Changed("config") {
				if done, err := explainFew(g, &in, out); done || err != nil {
					return err
				}
			}
			// A whole namespace or snapshot is read into a heap that only
			// grows: collections during the read and the FIB build would
			// scan it again at every doubling and put write barriers on
			// its copies (a fifth of the CPU of a million-route
			// explain --batch), for little garbage. Collection resumes
			// once the FIB is built (the read state is then garbage).
			resumeGC := func() {}
			if batch != "" && os.Getenv("GOGC") == "" {
				prev := debug.SetGCPercent(-1)
				resumeGC = func() { debug.SetGCPercent(prev) }
			}
			st, where, groups, err := explainState(cmd, g, stateFile, batch == "")
			if err != nil {
				resumeGC()
				return err
			}
			f, err := fib.New(st)
			resumeGC()
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if batch != "" {
				_, err := f.Batch(in, out, fib.BatchOptions{})
				return err
			}
			marks := fib.ApplyMarks(st.Firewall, &q, cgroup)
			r := f.Lookup(q)
			return printExplained(out, &r, marks, groups, asJSON)
		},
	}
	addConfigFlag(cmd, g)
	addNetnsFlag(cmd, g)
	cmd.Flags().StringVar(&stateFile, "state", "", "explain from this snapshot (tunroute snapshot -o FILE)")
	cmd.Flags().StringVar(&batch, "batch", "", "read queries from this file (- for standard input), one per line; print one JSON object per line")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON with the keys of ip -j -d route get, plus trace")
	return cmd
}

// printExplained prints one query's answer: the firewall marks it got,
// the answer and, in a group, which member carries the flow.
func printExplained(out *bufio.Writer, r *fib.Result, marks []string, groups *flowGroups, asJSON bool) error {
	group, err := groups.of(r)
	if err != nil {
		return fmt.Errorf("explain: which member of the group carries the flow: %w", err)
	}
	if asJSON {
		b := r.JSON()
		if group != nil {
			b = appendGroupJSON(b, group)
		}
		out.Write(b)
		out.WriteByte('\n')
	} else {
		for _, m := range marks {
			fmt.Fprintln(out, m)
		}
		fmt.Fprint(out, r.Text())
		if group != nil {
			writeGroupText(out, group)
		}
	}
	if !r.OK() {
		out.Flush()
		return &exitError{code: 2}
	}
	return nil
}

// explainState is the state to explain from: a snapshot, the preview of a
// config, or the whole live namespace (a batch: one live query is
// engine.LookupLive's), and, with a config and one query (withGroups),
// what says which member of a group carries the flow.
func explainState(cmd *cobra.Command, g *globalFlags, stateFile string, withGroups bool) (*state.State, string, *flowGroups, error) {
	if stateFile != "" {
		st, err := state.LoadFile(stateFile)
		return st, stateFile, nil, err
	}
	e, err := g.engine()
	if err != nil {
		return nil, "", nil, err
	}
	if cmd.Flags().Changed("config") {
		s, c, err := e.PlanConfig(false)
		if err != nil {
			return nil, "", nil, err
		}
		defer s.Close()
		var groups *flowGroups
		if withGroups {
			f, err := e.LoadFacts()
			if err != nil {
				return nil, "", nil, err
			}
			compiled := c.Compiled().Groups
			groups = newFlowGroups(c.Config, f, func() ([]compile.GroupState, error) { return compiled, nil })
		}
		return s.Preview(c), e.ConfigFile(), groups, nil
	}
	s, err := e.Observe(false)
	if err != nil {
		return nil, "", nil, err
	}
	defer s.Close()
	return s.Top(), e.Where(), nil, nil
}

// liveFlowGroups: a live explain says which member of a group carries a
// flow when the config (the default one, or --config) is there and
// valid; without it, explain answers from the kernel alone.
func liveFlowGroups(e *engine.Engine) *flowGroups {
	// A config without the word has no group: a live explain then reads
	// nothing more (a config may list a million routes).
	data, err := os.ReadFile(e.ConfigFile())
	if err != nil || !bytes.Contains(data, []byte("groups")) {
		return nil
	}
	cfg, err := config.Parse(data, e.ConfigFile(), config.Options{})
	if err != nil {
		return nil
	}
	f, err := e.LoadFacts()
	if err != nil {
		return nil
	}
	return newFlowGroups(cfg, f, func() ([]compile.GroupState, error) {
		s, err := e.ObserveForPlan(cfg, f, false)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		c, err := s.Plan(cfg, f)
		if err != nil {
			return nil, err
		}
		return c.Compiled().Groups, nil
	})
}

// explainFew answers a batch of a few queries to a live namespace one by
// one, its big tables not read if the kernel's answers settle them
// (engine.BatchFew); done false: the batch is not few, or needs the whole
// read, and *in still holds all of it.
func explainFew(g *globalFlags, in *io.Reader, out io.Writer) (done bool, err error) {
	head, few, err := readFewQueries(in, fewQueries)
	if err != nil {
		return false, fmt.Errorf("--batch: %w", err)
	}
	if !few {
		return false, nil
	}
	e, err := g.engine()
	if err != nil {
		return false, err
	}
	b, ok, err := e.BatchFew(head)
	if err != nil {
		return false, fmt.Errorf("%s: %w", e.Where(), err)
	}
	if !ok {
		*in = bytes.NewReader(head)
		return false, nil
	}
	_, err = out.Write(b)
	return true, err
}

// fewQueries is how many queries of a batch to a live namespace are
// answered with the big tables left out (engine.BatchFew: two kernel
// lookups a query, about 0.06 ms) rather than from a read of the whole
// namespace (a second beside a full BGP table): beyond some thousands
// the whole read answers faster.
const fewQueries = 1000

// readFewQueries reads the start of a batch: all of it, with few true,
// when it holds at most max queries (blank and comment lines aside);
// otherwise *in becomes what was read followed by the rest.
func readFewQueries(in *io.Reader, max int) (head []byte, few bool, err error) {
	br := bufio.NewReader(*in)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if err == bufio.ErrBufferFull {
			// A line longer than any query: the whole path says what it is.
			*in = io.MultiReader(bytes.NewReader(head), br)
			return nil, false, nil
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			n++
		}
		switch {
		case n > max:
			*in = io.MultiReader(bytes.NewReader(head), br)
			return nil, false, nil
		case err == io.EOF:
			return head, true, nil
		case err != nil:
			return nil, false, err
		}
	}
}
