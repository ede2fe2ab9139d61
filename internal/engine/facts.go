package engine

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/plan"
)

// Facts are the runtime facts a plan compiles with (by VPN name), and
// the fact files the apply writes: a hook's news is recorded by the same
// all-or-nothing apply that acts on it.
type Facts struct {
	VPNs  map[string]*facts.VPN
	Files []plan.File
	// Health is the health checks' verdict by identity, as the prober
	// last recorded it (RecordHealth); nil when none was: every identity
	// counts as healthy. Every plan uses it, so an apply by hand or a
	// hook keeps a failover the prober made.
	Health map[string]bool
	// Verdicts are the same verdicts with since when and why (nil when
	// none were recorded): status and explain show them.
	Verdicts map[string]compile.Verdict
	store    *facts.Store
}

// LoadFacts reads what the VPN hooks recorded for the namespace.
func (e *Engine) LoadFacts() (*Facts, error) {
	st, err := e.FactStore()
	if err != nil {
		return nil, err
	}
	vpns, err := st.All()
	if err != nil {
		return nil, err
	}
	f := &Facts{VPNs: vpns, store: st}
	p := f.healthPath()
	data, err := e.Host.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if data != nil {
		if err := f.readVerdicts(data); err != nil {
			return nil, fmt.Errorf("%s: not the health checks' record (remove it; the prober writes it again): %w", p, err)
		}
	}
	return f, nil
}

// healthFile holds the health checks' verdicts beside the VPN facts (not
// a .json file: those are VPNs).
const healthFile = "identity-health"

func (f *Facts) healthPath() string { return filepath.Join(f.store.Dir(), healthFile) }

// RecordHealth makes h the health checks' verdict: the plan compiles with
// it and the apply records it, so later plans keep it. An identity whose
// verdict is unchanged keeps its recorded since and why.
func (f *Facts) RecordHealth(e *Engine, h map[string]bool) error {
	v := make(map[string]compile.Verdict, len(h))
	for id, up := range h {
		if old, ok := f.Verdicts[id]; ok && old.Up == up {
			v[id] = old
			continue
		}
		v[id] = compile.Verdict{Up: up}
	}
	return f.RecordVerdicts(e, v)
}

// Record makes v the facts of its VPN: the plan compiles with them and
// the apply writes them to the store.
func (f *Facts) Record(e *Engine, v *facts.VPN) error {
	data, err := facts.Encode(v)
	if err != nil {
		return err
	}
	p := f.store.Path(v.Name)
	have, err := e.Host.ReadFile(p)
	if err != nil {
		return err
	}
	f.VPNs[v.Name] = v
	f.Files = append(f.Files, plan.File{Path: p, Want: data, Have: have, About: describeFacts(v)})
	return nil
}

// describeFacts says in a plan line what a hook reported.
func describeFacts(v *facts.VPN) string {
	if v.Down {
		return fmt.Sprintf("vpn %s is down", v.Name)
	}
	var parts []string
	for _, a := range v.Addrs {
		parts = append(parts, a.String())
	}
	s := fmt.Sprintf("vpn %s is up on %s", v.Name, v.Device)
	if len(parts) > 0 {
		s += " with " + strings.Join(parts, ", ")
	}
	return s
}
