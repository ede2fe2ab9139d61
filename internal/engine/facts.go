package engine

import (
	"fmt"
	"strings"

	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/plan"
)

// Facts are the runtime facts a plan compiles with (by VPN name), and
// the fact files the apply writes: a hook's news is recorded by the same
// all-or-nothing apply that acts on it.
type Facts struct {
	VPNs  map[string]*facts.VPN
	Files []plan.File
	store *facts.Store
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
	return &Facts{VPNs: vpns, store: st}, nil
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
