package engine

import (
	"fmt"
	"strings"

	"github.com/tunroute/tunroute/internal/bgp"
	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/netnsconf"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// Change is a planned change of the system: the steps, and what they
// were computed from.
type Change struct {
	Plan *plan.SystemPlan
	// Config and System are what was compiled (nil for down).
	Config *config.Config
	System *compile.System
	// Notes are compile's remarks, for the user.
	Notes []string
	// BGP are the speakers to start, reload or stop.
	BGP []bgp.Change
	// VPNs are the runtime facts the config was compiled with.
	VPNs map[string]*facts.VPN
}

// Empty: nothing to do.
func (c *Change) Empty() bool { return c.Plan.Empty() && len(c.BGP) == 0 }

// Text is the plan for people: every kernel and system step, then the
// BGP speakers' changes.
func (c *Change) Text() string {
	t := c.Plan.Text()
	if len(c.BGP) > 0 {
		if c.Plan.Empty() { // no kernel change: the header counts the speakers
			_, rest, _ := strings.Cut(t, "\n")
			t = fmt.Sprintf("Plan for the BGP speakers: %d to change.\n", len(c.BGP)) + rest
		}
		t += strings.Join(bgpLines(c.BGP), "\n") + "\n"
	}
	return t
}

// Done says what an applied change did.
func (c *Change) Done() string {
	t := c.Plan.Tally().String()
	if n := len(c.BGP); n > 0 {
		t += fmt.Sprintf(", %d BGP speaker changes", n)
	}
	return t
}

// Lines are the pending changes, one per effect (status).
func (c *Change) Lines() []string { return append(c.Plan.Lines(), bgpLines(c.BGP)...) }

// Compiled is the top namespace's share of the compiled config (nil for
// down).
func (c *Change) Compiled() *compile.Result {
	if c.System == nil {
		return nil
	}
	return c.System.Domains[0].Result
}

// PlanConfig reads the config and the system at once (a route list may
// hold a million lines, and the kernel as many routes) and plans the
// change towards the config with the recorded runtime facts. The caller
// closes the session.
func (e *Engine) PlanConfig(compact bool) (*Session, *Change, error) {
	if compact && !e.hasRouteLists() {
		return e.planScoped()
	}
	type loaded struct {
		cfg *config.Config
		err error
	}
	ch := make(chan loaded, 1)
	go func() {
		cfg, err := e.LoadConfig()
		ch <- loaded{cfg, err}
	}()
	s, err := e.Observe(compact)
	l := <-ch
	if l.err != nil || err != nil {
		if s != nil {
			s.Close()
		}
		if l.err != nil {
			return nil, nil, l.err
		}
		return nil, nil, err
	}
	f, err := e.LoadFacts()
	if err == nil {
		var c *Change
		if c, err = s.Plan(l.cfg, f); err == nil {
			return s, c, nil
		}
	}
	s.Close()
	return nil, nil, err
}

// Plan plans the change that makes the system match cfg, compiled with
// the facts f (whose pending files the apply writes first).
func (s *Session) Plan(cfg *config.Config, f *Facts) (*Change, error) {
	if err := s.checkDomainNames(cfg); err != nil {
		return nil, err
	}
	sys, err := s.compile(cfg, f)
	if err != nil {
		return nil, err
	}
	c := &Change{Config: cfg, System: sys, VPNs: f.VPNs}
	var nss []plan.Namespace
	inConfig := map[string]bool{}
	for i, d := range sys.Domains {
		n := plan.Namespace{Netns: d.Netns, Owned: d.Owned, Desired: d.Result.State, MovesIn: d.Moves, Sysctls: d.Sysctls}
		if d.Exists || i == 0 {
			n.Observed = s.Observed[d.Netns]
		}
		nss = append(nss, n)
		inConfig[d.Netns] = true
		for _, note := range d.Result.Notes {
			if i > 0 {
				note = "domain " + d.Name + ": " + note
			}
			c.Notes = append(c.Notes, note)
		}
	}
	for _, ns := range s.Domains {
		if !inConfig[ns] {
			nss = append(nss, plan.Namespace{Netns: ns, Owned: true, Observed: s.Observed[ns]})
		}
	}
	files, err := s.etcFiles(sys)
	if err != nil {
		return nil, err
	}
	if c.Plan, err = plan.DiffSystem(nss, append(f.Files, files...)...); err != nil {
		return nil, err
	}
	if c.BGP, err = s.e.bgpChanges(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// checkDomainNames refuses a domain whose namespace exists but is not
// one tunroute made for this config, or is the namespace it works on.
func (s *Session) checkDomainNames(cfg *config.Config) error {
	mine := map[string]bool{}
	for _, ns := range s.Domains {
		mine[ns] = true
	}
	existing, err := s.e.Host.ListNamespaces()
	if err != nil {
		return err
	}
	exists := map[string]bool{}
	for _, n := range existing {
		exists[n] = true
	}
	for _, dm := range cfg.Domains {
		if exists[dm.Name] && !mine[dm.Name] {
			return dm.At("name").Errorf("network namespace %s exists and is not a domain of this config; rename the domain or remove the namespace", dm.Name)
		}
		if dm.Name == s.e.Netns {
			return dm.At("name").Errorf("%s is the namespace tunroute works on (--netns); a domain needs its own", dm.Name)
		}
	}
	return nil
}

// etcFiles are the domains' /etc/netns/NAME/resolv.conf files: written
// for domains with resolvers, removed (when tunroute wrote them) for the
// others and for domains that are gone. A resolv.conf tunroute did not
// write is never replaced.
func (s *Session) etcFiles(sys *compile.System) ([]plan.File, error) {
	var files []plan.File
	seen := map[string]bool{}
	add := func(ns string, want []byte) error {
		seen[ns] = true
		p := netnsconf.ResolvConfPath(s.e.etcNetns(), ns)
		have, err := s.e.Host.ReadFile(p)
		if err != nil {
			return err
		}
		if have != nil && !netnsconf.Ours(have) {
			if want == nil {
				return nil
			}
			return fmt.Errorf("%s exists and was not written by tunroute; not replacing it (remove it, or the domain's resolvers)", p)
		}
		files = append(files, plan.File{Path: p, Want: want, Have: have, About: "resolvers of domain " + ns})
		return nil
	}
	if sys != nil {
		for _, dm := range sys.Domains[1:] {
			var want []byte
			if len(dm.ResolvConf) > 0 {
				want = netnsconf.ResolvConf(dm.Netns, dm.ResolvConf)
			}
			if err := add(dm.Netns, want); err != nil {
				return nil, err
			}
		}
	}
	for _, ns := range s.Domains {
		if !seen[ns] {
			if err := add(ns, nil); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// PlanDown plans removing everything tunroute owns: in the namespace it
// works on and in every domain namespace it made (which are deleted,
// their devices moved back), with the domains' files.
func (s *Session) PlanDown() (*Change, error) {
	nss := []plan.Namespace{{Netns: s.e.Netns, Desired: &state.State{Version: state.Version, Namespace: s.e.Netns}, Observed: s.Top()}}
	for _, ns := range s.Domains {
		nss = append(nss, plan.Namespace{Netns: ns, Owned: true, Observed: s.Observed[ns]})
	}
	files, err := s.etcFiles(nil)
	if err != nil {
		return nil, err
	}
	p, err := plan.DiffSystem(nss, files...)
	if err != nil {
		return nil, err
	}
	c := &Change{Plan: p}
	if c.BGP, err = s.e.bgpChanges(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// Apply carries out a change all-or-nothing. The journal undoes it
// (apply --confirm that is not confirmed).
func (s *Session) Apply(c *Change) (*plan.Journal, error) {
	if s.e.Progress != nil {
		for _, h := range s.handles {
			h.SetProgress(s.e.Progress)
		}
	}
	var j *plan.Journal
	err := s.e.applyBGP(c.BGP, func() error {
		var err error
		j, err = plan.ApplySystem(planSystem{s}, c.Plan)
		if c.Plan.ChangesNamespaces() {
			s.e.Domains.Forget()
		}
		return err
	}, func() error { return j.Undo() })
	if err != nil {
		return nil, err
	}
	return j, nil
}

// Preview is the state the top namespace would be in after the change:
// what explain -c explains.
func (s *Session) Preview(c *Change) *state.State {
	return plan.Preview(c.Compiled().State, s.Top())
}
