package engine

import (
	"bytes"
	"net/netip"
	"os"
	"slices"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// A plan depends on few of the routes tunroute does not own: compile asks
// the main table for the route to a few addresses (the default, the VPN
// servers, the LAN prefixes, the gateways; only foreign routes count),
// and the plan refuses a route whose key someone else holds. So a plan of
// a small config reads tunroute's own routes, the small tables whole, and
// of a big table (a full BGP table in main) the routes covering those
// addresses and the config's route keys (kernel.RouteScope). What compile
// then makes is checked against the scope (Session.compile): a route key
// outside it widens the scope and reads the namespace again, so the plan
// is the one a full read gives.

// maxScopePoints is the number of destinations above which a config is
// big itself (route lists): then everything is read, as the plan touches
// a large part of the tables anyway.
const maxScopePoints = 1024

// ScopedObserver is a Handle that can read only part of the routes of
// others (the live kernel). Hosts whose handles are not read everything and
// drop the rest, with the same selection.
type ScopedObserver interface {
	ObserveScoped(compact bool, scope *kernel.RouteScope) (*state.State, error)
}

func (l liveHandle) ObserveScoped(compact bool, scope *kernel.RouteScope) (*state.State, error) {
	return l.h.ObserveWith(kernel.ObserveOptions{CompactRoutes: compact, Routes: scope, Cache: l.routes})
}

// observeScoped reads a namespace through h with scope (nil: whole).
func observeScoped(h Handle, compact bool, scope *kernel.RouteScope) (*state.State, error) {
	if scope == nil {
		return h.Observe(compact)
	}
	if so, ok := h.(ScopedObserver); ok {
		return so.ObserveScoped(compact, scope)
	}
	st, err := h.Observe(compact)
	if err != nil {
		return nil, err
	}
	scope.FilterState(st)
	return st, nil
}

// scopeFor is the scope a plan of cfg with the VPN facts vpns reads, nil
// when it must read everything (a config with domains, or with more route
// destinations than maxScopePoints).
func scopeFor(cfg *config.Config, vpns map[string]*facts.VPN) *kernel.RouteScope {
	if cfg == nil || len(cfg.Domains) > 0 {
		return nil
	}
	s := &kernel.RouteScope{Tables: []uint32{state.TableMain, state.TableLocal}, AddrPrefixes: true}
	table := func(t uint32) {
		if t != 0 && !s.HasTable(t) {
			s.Tables = append(s.Tables, t)
		}
	}
	seen := map[netip.Prefix]bool{}
	point := func(p netip.Prefix) {
		if p.IsValid() && !seen[p.Masked()] {
			seen[p.Masked()] = true
			s.Points = append(s.Points, p.Masked())
		}
	}
	host := func(a netip.Addr) {
		if a.IsValid() {
			point(netip.PrefixFrom(a, a.BitLen()))
		}
	}
	point(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
	point(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
	for _, v := range cfg.VPNs {
		for _, e := range v.Servers {
			host(e.Addr)
		}
	}
	for _, v := range vpns {
		for _, e := range v.Servers {
			host(e.Addr)
		}
		host(v.Gateway4)
		host(v.Gateway6)
		host(v.OrigGateway4)
		for _, p := range v.Routes {
			point(p)
		}
	}
	// The tables compile hands out come from the base up, one per
	// identity or local section, skipping reserved and taken numbers:
	// read a few more than that (a table that does not exist costs one
	// message), so that a first apply needs no second read.
	for t := range uint32(len(cfg.Identities) + len(cfg.Local) + len(cfg.Devices) + 4) {
		if _, reserved := state.ReservedTables[cfg.TableBase+t]; !reserved && cfg.TableBase != 0 {
			table(cfg.TableBase + t)
		}
	}
	for _, t := range cfg.Tables {
		table(t)
	}
	for _, id := range cfg.Identities {
		table(id.Table)
		for _, g := range id.Gateways {
			host(g)
		}
	}
	n := 0
	for _, r := range cfg.Routes {
		if n += len(r.To); n > maxScopePoints {
			return nil
		}
		table(r.Table)
		for _, p := range r.To {
			point(p)
		}
	}
	for _, l := range cfg.Local {
		table(l.Table)
		for _, p := range l.To {
			point(p)
		}
	}
	if rd := cfg.Redirect; rd != nil {
		for _, half := range []string{"0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"} {
			point(netip.MustParsePrefix(half))
		}
		for _, a := range rd.Servers {
			host(a)
		}
		for _, p := range rd.LAN {
			point(p)
		}
	}
	if len(s.Points) > maxScopePoints {
		return nil
	}
	return s
}

// widen returns scope grown by what sys wants that it does not cover:
// the tables and destinations of the routes compile made. ok is false
// when nothing was missing.
func widen(scope *kernel.RouteScope, sys *compile.System) (wider *kernel.RouteScope, ok bool) {
	w := *scope
	w.Tables, w.Points = slices.Clone(scope.Tables), slices.Clone(scope.Points)
	grew := false
	want := func(table uint32, dst netip.Prefix) {
		if table == 0 {
			table = state.TableMain
		}
		if !w.HasTable(table) {
			w.Tables, grew = append(w.Tables, table), true
		}
		if !w.Covers(dst, 0) {
			w.Points, grew = append(w.Points, dst), true
		}
	}
	for _, d := range sys.Domains {
		st := d.Result.State
		for i := range st.Routes {
			want(st.Routes[i].Table, st.Routes[i].Dst)
		}
		for i := range st.RouteSets {
			for _, dst := range st.RouteSets[i].Dsts {
				want(st.RouteSets[i].Template.Table, dst)
			}
		}
	}
	return &w, grew
}

// ObserveForPlan observes for planning cfg with the facts f: tunroute's
// own objects, and of the routes of others only what such a plan can
// depend on (Session.Plan widens the read when compile makes more).
func (e *Engine) ObserveForPlan(cfg *config.Config, f *Facts, compact bool) (*Session, error) {
	var vpns map[string]*facts.VPN
	if f != nil {
		vpns = f.VPNs
	}
	return e.observe(compact, scopeFor(cfg, vpns))
}

// ObserveOwned observes for removing what tunroute owns (down): no route
// of others is read.
func (e *Engine) ObserveOwned(compact bool) (*Session, error) {
	return e.observe(compact, &kernel.RouteScope{})
}

// compile compiles cfg for the session; on a scoped session, a result that
// wants routes outside the scope widens it and reads the top namespace
// again (at most twice, then everything), so that conflicts and what
// compile discovers are those of a full read; an error is confirmed on a
// full read.
func (s *Session) compile(cfg *config.Config, f *Facts) (*compile.System, error) {
	for range 3 {
		sys, err := compile.CompileSystemHealth(cfg, s.e.Netns, s.Observed, f.VPNs, f.Health)
		if s.scope == nil {
			return sys, err
		}
		if err != nil {
			// Said from everything, as a full read would.
			if err := s.reread(nil); err != nil {
				return nil, err
			}
			continue
		}
		need := scopeFor(cfg, f.VPNs)
		if need == nil {
			if err := s.reread(nil); err != nil {
				return nil, err
			}
			continue
		}
		top := s.Top()
		w, grew := widen(s.scope.Resolve(top.Rules, top.Addrs), sys)
		for _, p := range need.Points {
			if !w.Covers(p, 0) {
				w.Points, grew = append(w.Points, p), true
			}
		}
		for _, t := range need.Tables {
			if !w.HasTable(t) {
				w.Tables, grew = append(w.Tables, t), true
			}
		}
		if !grew {
			return sys, nil
		}
		if len(w.Points) > maxScopePoints {
			w = nil
		}
		if err := s.reread(w); err != nil {
			return nil, err
		}
	}
	if err := s.reread(nil); err != nil {
		return nil, err
	}
	return compile.CompileSystemHealth(cfg, s.e.Netns, s.Observed, f.VPNs, f.Health)
}

// reread reads the top namespace again with scope (nil: everything).
func (s *Session) reread(scope *kernel.RouteScope) error {
	s.scope = scope
	if h, ok := s.handles[s.e.Netns]; ok {
		h.Close()
		delete(s.handles, s.e.Netns)
	}
	return s.read(s.e.Netns, s.compact)
}

// hasRouteLists reports whether the config file names route lists
// (to_file), read without parsing it: such a config is big, reads
// everything, and is best loaded while the kernel is read.
func (e *Engine) hasRouteLists() bool {
	b, err := os.ReadFile(e.ConfigFile()) // where LoadConfig reads it
	return err != nil || bytes.Contains(b, []byte("to_file"))
}

// planScoped is PlanConfig for planning: the config and the facts first,
// then a read of what a plan of them depends on.
func (e *Engine) planScoped() (*Session, *Change, error) {
	cfg, err := e.LoadConfig()
	if err != nil {
		return nil, nil, err
	}
	f, err := e.LoadFacts()
	if err != nil {
		return nil, nil, err
	}
	s, err := e.ObserveForPlan(cfg, f, true)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.Plan(cfg, f)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, c, nil
}
