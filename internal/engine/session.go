package engine

import (
	"fmt"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/netnsname"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
)

// Session is one observation of the system: the namespace tunroute works
// on and the domain namespaces it made for it, each read once. Plans are
// made against it and applied through its open handles. Close it.
type Session struct {
	e *Engine
	// Observed holds every namespace read, by name.
	Observed compile.Observed
	// Domains are the existing namespaces tunroute made for this
	// namespace's config.
	Domains []string
	handles map[string]Handle
	// scope is what was read of the top namespace's routes of others
	// (nil: all); compact as given to Observe.
	scope   *kernel.RouteScope
	compact bool
}

// Observe reads the namespace tunroute works on and its domains. compact
// reads tunroute's big route lists as route sets (for planning: a
// million routes in 32 MB); explain, status and snapshots want plain
// routes.
func (e *Engine) Observe(compact bool) (*Session, error) { return e.observe(compact, nil) }

// observe reads the top namespace with scope (scope.go), its domains
// whole.
func (e *Engine) observe(compact bool, scope *kernel.RouteScope) (*Session, error) {
	s := &Session{e: e, Observed: compile.Observed{}, handles: map[string]Handle{}, scope: scope, compact: compact}
	if err := s.read(e.Netns, compact); err != nil {
		return nil, err
	}
	for {
		doms, cached, err := e.domainNamespaces()
		if err != nil {
			s.Close()
			return nil, err
		}
		if err = s.readDomains(doms, compact); err == nil {
			s.Domains = doms
			return s, nil
		}
		if !cached {
			s.Close()
			return nil, err
		}
		// A domain the cache knew is gone (or unreadable): list again.
		e.Domains.Forget()
		for _, ns := range doms {
			if h, ok := s.handles[ns]; ok {
				h.Close()
				delete(s.handles, ns)
				delete(s.Observed, ns)
			}
		}
	}
}

func (s *Session) readDomains(doms []string, compact bool) error {
	for _, ns := range doms {
		if err := s.read(ns, compact); err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) read(ns string, compact bool) error {
	h, err := s.e.Host.Open(ns)
	if err != nil {
		return err
	}
	var scope *kernel.RouteScope
	if ns == s.e.Netns {
		scope = s.scope
	}
	obs, err := observeScoped(h, compact, scope)
	if err != nil {
		h.Close()
		return fmt.Errorf("reading %s: %w", netnsname.Word(ns), err)
	}
	s.handles[ns], s.Observed[ns] = h, obs
	return nil
}

// Top is what the namespace tunroute works on holds.
func (s *Session) Top() *state.State { return s.Observed[s.e.Netns] }

// Close releases the namespaces' handles.
func (s *Session) Close() {
	for ns, h := range s.handles {
		h.Close()
		delete(s.handles, ns)
	}
}

// planSystem lets plan.ApplySystem reach every namespace through the
// session's handles (opening new namespaces on demand) and the host.
type planSystem struct{ s *Session }

func (p planSystem) Executor(ns string) (plan.Executor, error) {
	if h, ok := p.s.handles[ns]; ok {
		return h, nil
	}
	h, err := p.s.e.Host.Open(ns)
	if err != nil {
		return nil, err
	}
	if p.s.e.Progress != nil {
		h.SetProgress(p.s.e.Progress)
	}
	p.s.handles[ns] = h
	return h, nil
}

func (p planSystem) CreateNamespace(name string) error {
	return p.s.e.Host.CreateNamespace(name, p.s.e.Netns)
}

func (p planSystem) DeleteNamespace(name string) error {
	if h, ok := p.s.handles[name]; ok {
		h.Close()
		delete(p.s.handles, name)
	}
	return p.s.e.Host.DeleteNamespace(name, p.s.e.Netns)
}

func (p planSystem) MoveLink(dev, from, to string) error { return p.s.e.Host.MoveLink(dev, from, to) }

func (p planSystem) SetSysctls(ns string, values map[string]string) error {
	return p.s.e.Host.SetSysctls(ns, values)
}

func (p planSystem) WriteFile(path string, data []byte, perm uint32) error {
	return p.s.e.Host.WriteFile(path, data, perm)
}

// SessionOf is a session of states read elsewhere (by tunroute run, for
// status): plans can be made against it, nothing applied through it.
func (e *Engine) SessionOf(observed compile.Observed, domains []string) *Session {
	return &Session{e: e, Observed: observed, Domains: domains, handles: map[string]Handle{}}
}
