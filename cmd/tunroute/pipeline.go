package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/netnsconf"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// session is one run of the pipeline: config -> compile -> desired state
// per namespace, kernel -> observed, diff -> plan. The top namespace is
// the one tunroute runs on (--netns); the others are the config's domains.
type session struct {
	g   *globalFlags
	cfg *config.Config
	// h and observed are the top namespace's.
	h        *kernel.Handle
	observed *state.State
	// handles and obs cover every namespace opened, by name.
	handles map[string]*kernel.Handle
	obs     compile.Observed
	// domainNS are the existing namespaces tunroute made for this config.
	domainNS []string
	sys      *compile.System
	compiled *compile.Result // the top namespace's share
	plan     *plan.SystemPlan
	notes    []string
	journal  *plan.Journal
	// progress draws a bar for long applies (nil: none).
	progress *progressBar
	// etcBefore is what syncEtc found in the files it changed (nil: no
	// file), so that undo can put it back.
	etcBefore map[string][]byte
	// compact: observe tunroute's own routes as route sets.
	compact bool
}

// openSession opens and observes the top namespace and the domain
// namespaces tunroute made for it, for planning: tunroute's own routes
// that share a template are read as compact route sets (a million routes
// in 32 MB). The caller closes it.
func openSession(g *globalFlags) (*session, error) {
	return openSessionWith(g, true)
}

// openPlainSession observes every route as a state.Route: for snapshots,
// explain and status, which read routes one by one.
func openPlainSession(g *globalFlags) (*session, error) {
	return openSessionWith(g, false)
}

func openSessionWith(g *globalFlags, compact bool) (*session, error) {
	s := &session{g: g, handles: map[string]*kernel.Handle{}, obs: compile.Observed{}, compact: compact}
	h, obs, err := s.open(g.netns)
	if err != nil {
		return nil, err
	}
	s.h, s.observed = h, obs
	if s.domainNS, err = kernel.DomainNamespaces(g.netns); err != nil {
		s.Close()
		return nil, err
	}
	for _, ns := range s.domainNS {
		if _, _, err := s.open(ns); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *session) open(ns string) (*kernel.Handle, *state.State, error) {
	if h, ok := s.handles[ns]; ok {
		return h, s.obs[ns], nil
	}
	h, err := kernel.Open(ns)
	if err != nil {
		return nil, nil, err
	}
	obs, err := h.ObserveWith(kernel.ObserveOptions{CompactRoutes: s.compact})
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", nsWord(ns), err)
	}
	s.handles[ns], s.obs[ns] = h, obs
	return h, obs, nil
}

func (s *session) Close() {
	for _, h := range s.handles {
		h.Close()
	}
}

func nsWord(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}

// planConfig loads the config and plans the change towards it.
func planConfig(g *globalFlags) (*session, error) {
	return planConfigWith(g, true)
}

func planConfigWith(g *globalFlags, compact bool) (*session, error) {
	// Reading the config (a route list may hold a million lines) and
	// reading the kernel take about as long: do both at once.
	type loaded struct {
		cfg *config.Config
		err error
	}
	ch := make(chan loaded, 1)
	go func() {
		cfg, err := config.Load(g.config, config.Options{})
		ch <- loaded{cfg, err}
	}()
	s, err := openSessionWith(g, compact)
	l := <-ch
	if l.err != nil {
		if s != nil {
			s.Close()
		}
		return nil, l.err
	}
	if err != nil {
		return nil, err
	}
	if err := s.planFor(l.cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *session) planFor(cfg *config.Config) error {
	s.cfg = cfg
	mine := map[string]bool{}
	for _, ns := range s.domainNS {
		mine[ns] = true
	}
	existing, err := kernel.ListNamespaces()
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
		if dm.Name == s.g.netns {
			return dm.At("name").Errorf("%s is the namespace tunroute works on (--netns); a domain needs its own", dm.Name)
		}
	}
	vpns, err := loadFacts(s.g)
	if err != nil {
		return err
	}
	if s.sys, err = compile.CompileSystem(cfg, s.g.netns, s.obs, vpns); err != nil {
		return err
	}
	s.compiled = s.sys.Domains[0].Result
	var nss []plan.Namespace
	inConfig := map[string]bool{}
	for i, d := range s.sys.Domains {
		n := plan.Namespace{Netns: d.Netns, Owned: d.Owned, Desired: d.Result.State, MovesIn: d.Moves, Sysctls: d.Sysctls}
		if d.Exists || i == 0 {
			n.Observed = s.obs[d.Netns]
		}
		nss = append(nss, n)
		inConfig[d.Netns] = true
		for _, note := range d.Result.Notes {
			if i == 0 {
				s.notes = append(s.notes, note)
			} else {
				s.notes = append(s.notes, "domain "+d.Name+": "+note)
			}
		}
	}
	for _, ns := range s.domainNS {
		if !inConfig[ns] {
			nss = append(nss, plan.Namespace{Netns: ns, Owned: true, Observed: s.obs[ns]})
		}
	}
	s.plan, err = plan.DiffSystem(nss)
	return err
}

// planDown plans removing everything tunroute owns: in the top namespace
// and in every domain namespace it made (which are deleted).
func (s *session) planDown() error {
	nss := []plan.Namespace{{Netns: s.g.netns, Desired: &state.State{Version: state.Version, Namespace: s.g.netns}, Observed: s.observed}}
	for _, ns := range s.domainNS {
		nss = append(nss, plan.Namespace{Netns: ns, Owned: true, Observed: s.obs[ns]})
	}
	var err error
	s.plan, err = plan.DiffSystem(nss)
	return err
}

func domainNames(cfg *config.Config) []string {
	var out []string
	for _, d := range cfg.Domains {
		out = append(out, d.Name)
	}
	return out
}

// apply carries out the session's plan all-or-nothing.
func (s *session) apply() error {
	if s.progress != nil {
		for _, h := range s.handles {
			h.SetProgress(s.progress.update)
		}
		defer s.progress.finish()
	}
	j, err := plan.ApplySystem(kernelSystem{s}, s.plan)
	s.journal = j
	if err != nil {
		return err
	}
	return s.syncEtc()
}

// undo reverses an applied plan, and the /etc/netns files it wrote.
func (s *session) undo() error {
	if s.journal == nil {
		return nil
	}
	if err := s.journal.Undo(); err != nil {
		return err
	}
	var errs []error
	for ns, old := range s.etcBefore {
		if old == nil {
			errs = append(errs, netnsconf.Dir{Root: netnsconf.DefaultDir}.Remove(ns))
			continue
		}
		p := filepath.Join(netnsconf.DefaultDir, ns, "resolv.conf")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.WriteFile(p, old, 0o644))
	}
	s.etcBefore = nil
	return errors.Join(errs...)
}

// kernelSystem lets the planner reach every namespace.
type kernelSystem struct{ s *session }

func (k kernelSystem) Executor(ns string) (plan.Executor, error) {
	if h, ok := k.s.handles[ns]; ok {
		return h, nil
	}
	h, err := kernel.Open(ns)
	if err != nil {
		return nil, err
	}
	if k.s.progress != nil {
		h.SetProgress(k.s.progress.update)
	}
	k.s.handles[ns] = h
	return h, nil
}

func (k kernelSystem) CreateNamespace(name string) error {
	return kernel.CreateNamespace(name, k.s.g.netns)
}

func (k kernelSystem) DeleteNamespace(name string) error {
	if h, ok := k.s.handles[name]; ok {
		h.Close()
		delete(k.s.handles, name)
	}
	return kernel.DeleteNamespace(name, k.s.g.netns)
}

func (k kernelSystem) MoveLink(dev, from, to string) error {
	return kernel.MoveLink(dev, from, to)
}

func (k kernelSystem) SetSysctls(ns string, values map[string]string) error {
	return kernel.SetSysctls(ns, values)
}

// factsStore is the runtime facts directory of the namespace.
func factsStore(g *globalFlags) (*facts.Store, error) {
	return facts.Open(filepath.Join(g.runDir, "facts"), g.netns)
}

// loadFacts reads what the VPN hooks reported for the namespace.
func loadFacts(g *globalFlags) (map[string]*facts.VPN, error) {
	st, err := factsStore(g)
	if err != nil {
		return nil, err
	}
	return st.All()
}

// syncEtc writes each domain's /etc/netns/NAME/resolv.conf and removes
// those of domains that are gone (only files tunroute wrote).
func (s *session) syncEtc() error {
	d := netnsconf.Dir{Root: netnsconf.DefaultDir}
	s.etcBefore = map[string][]byte{}
	remember := func(ns string) {
		if _, ok := s.etcBefore[ns]; ok {
			return
		}
		b, err := os.ReadFile(filepath.Join(netnsconf.DefaultDir, ns, "resolv.conf"))
		if err != nil {
			b = nil
		}
		s.etcBefore[ns] = b
	}
	want := map[string]bool{}
	if s.sys != nil {
		for _, dm := range s.sys.Domains[1:] {
			want[dm.Netns] = true
			remember(dm.Netns)
			var err error
			if len(dm.ResolvConf) > 0 {
				err = d.WriteResolvConf(dm.Netns, dm.ResolvConf)
			} else {
				err = d.Remove(dm.Netns)
			}
			if err != nil {
				return err
			}
		}
	}
	for _, ns := range s.domainNS {
		if !want[ns] {
			remember(ns)
			if err := d.Remove(ns); err != nil {
				return err
			}
		}
	}
	return nil
}
