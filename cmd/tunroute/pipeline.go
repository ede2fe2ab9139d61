package main

import (
	"fmt"
	"path/filepath"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// session is one run of the pipeline against one namespace:
// config -> compile -> desired, kernel -> observed, diff -> plan.
type session struct {
	cfg      *config.Config
	h        *kernel.Handle
	observed *state.State
	compiled *compile.Result
	plan     *plan.Plan
}

// openSession opens the namespace and observes it. The caller closes it.
func openSession(g *globalFlags) (*session, error) {
	h, err := kernel.Open(g.netns)
	if err != nil {
		return nil, err
	}
	obs, err := h.Observe()
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("reading the namespace: %w", err)
	}
	return &session{h: h, observed: obs}, nil
}

func (s *session) Close() { s.h.Close() }

// planConfig loads the config and plans the change towards it.
func planConfig(g *globalFlags) (*session, error) {
	cfg, err := config.Load(g.config, config.Options{})
	if err != nil {
		return nil, err
	}
	s, err := openSession(g)
	if err != nil {
		return nil, err
	}
	s.cfg = cfg
	vpns, err := loadFacts(g)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.compiled, err = compile.Compile(cfg, s.observed, vpns)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.plan, err = plan.Diff(s.compiled.State, s.observed)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
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
