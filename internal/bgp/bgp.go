// Package bgp runs one BGP engine instance per routing domain that
// declares a bgp section: BIRD 2 by default, FRR on request. It generates
// the instance's configuration and filters from the config, checks them
// with the engine's own parser, and starts, reloads and stops the
// instance inside the domain's namespace with a run directory of its
// own.
//
// tunroute owns the instances and their files, never the routes they
// learn: those carry the engine's route protocol ("proto bird", or
// "proto bgp" for FRR), which tunroute's plan, apply and down leave
// alone.
package bgp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/tunroute/tunroute/internal/config"
)

// Speaker is one BGP speaker of a config with where it runs.
type Speaker struct {
	// Domain is the routing domain (config.HostDomain for the top level).
	Domain string
	// Netns is the namespace it runs in ("" the host's own).
	Netns string
	// Top is the namespace tunroute was applied on ("" the host's): the
	// instances of one config share it, and StopAll stops them by it.
	Top string
	BGP *config.BGP
}

func (s Speaker) where() string {
	if s.Domain == config.HostDomain {
		if s.Netns == "" {
			return "the host namespace"
		}
		return "namespace " + s.Netns
	}
	return "routing domain " + s.Domain
}

// Speakers lists the config's speakers; top is the namespace the config
// is applied on ("" the host's). A domain runs in the namespace of its
// name.
func Speakers(cfg *config.Config, top string) []Speaker {
	var out []Speaker
	for _, db := range cfg.AllBGP() {
		ns := db.Domain
		if db.Domain == config.HostDomain {
			ns = top
		}
		out = append(out, Speaker{Domain: db.Domain, Netns: ns, Top: top, BGP: db.BGP})
	}
	return out
}

// Manager keeps the instances' run directories under RunDir/bgp.
type Manager struct {
	// RunDir is tunroute's runtime directory (/run/tunroute).
	RunDir string
}

// instance is the run directory of one speaker: its files, and what is
// recorded about it so that StopAll finds it without the config.
type instance struct {
	Dir string `json:"-"`
	// Engine, Netns, Top, Domain as in Speaker; Tables are the kernel
	// tables the instance installs routes in.
	Engine string   `json:"engine"`
	Netns  string   `json:"netns"`
	Top    string   `json:"top"`
	Domain string   `json:"domain"`
	Tables []uint32 `json:"tables"`
}

func (in *instance) metaFile() string { return in.path("instance.json") }

func (in *instance) engine() engine {
	e, err := engineOf(in.Engine)
	if err != nil {
		return birdEngine{} // an unknown word in our own record: treat it as the default
	}
	return e
}

// dirName names an instance's directory after its namespace, which is
// unique on the host.
func dirName(netns string) string {
	if netns == "" {
		return "_host"
	}
	return netns
}

func (m *Manager) base() string { return filepath.Join(m.RunDir, "bgp") }

func (m *Manager) instanceOf(s Speaker) *instance {
	return &instance{Dir: filepath.Join(m.base(), dirName(s.Netns)), Engine: s.BGP.Engine, Netns: s.Netns, Top: s.Top,
		Domain: s.Domain, Tables: []uint32{s.BGP.Table}}
}

// instances lists the run directories, those of one top namespace.
func (m *Manager) instances(top string) ([]*instance, error) {
	entries, err := os.ReadDir(m.base())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*instance
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		in := &instance{Dir: filepath.Join(m.base(), e.Name())}
		b, err := os.ReadFile(in.metaFile())
		if err != nil {
			continue // not (yet) an instance: nothing of ours was started there
		}
		if err := json.Unmarshal(b, in); err != nil {
			return nil, fmt.Errorf("%s: %w", in.metaFile(), err)
		}
		if in.Top == top {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out, nil
}

// Action is what happens to an instance.
type Action string

// The actions of a Change.
const (
	ActionStart  Action = "start"
	ActionReload Action = "reload"
	ActionStop   Action = "stop"
)

// Change is one instance to start, reload (its configuration changed) or
// stop (its domain or bgp section left the config).
type Change struct {
	Action Action
	Domain string
	Netns  string
	// Engine is "bird" or "frr".
	Engine string
	// Speaker is set for start and reload.
	Speaker *Speaker
}

func (c Change) String() string {
	where := "routing domain " + c.Domain
	if c.Domain == config.HostDomain {
		where = "the top namespace"
	}
	name := map[string]string{"bird": "BIRD", "frr": "FRR"}[c.Engine]
	if name == "" {
		name = c.Engine
	}
	return fmt.Sprintf("%s the BGP speaker (%s) of %s", c.Action, name, where)
}

// Changes lists what Apply would do to make the running instances of top
// match the speakers: start those not running, reload those whose
// generated configuration differs from the running one, stop those no
// longer declared. Nothing changes on the system.
func (m *Manager) Changes(speakers []Speaker, top string) ([]Change, error) {
	var out []Change
	want := map[string]bool{}
	for i := range speakers {
		s := &speakers[i]
		in := m.instanceOf(*s)
		want[in.Dir] = true
		if _, running := m.running(in); !running {
			out = append(out, Change{Action: ActionStart, Domain: s.Domain, Netns: s.Netns, Engine: in.Engine, Speaker: s})
			continue
		}
		if !m.current(in, *s) {
			out = append(out, Change{Action: ActionReload, Domain: s.Domain, Netns: s.Netns, Engine: in.Engine, Speaker: s})
		}
	}
	ins, err := m.instances(top)
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		if !want[in.Dir] {
			out = append(out, Change{Action: ActionStop, Domain: in.Domain, Netns: in.Netns, Engine: in.Engine})
		}
	}
	return out, nil
}

// Split orders changes around the kernel plan: before are the stops
// (their domains' namespaces may be about to go, and a stopped engine
// withdraws its routes while its links still exist); after are the
// starts and reloads (their namespaces, devices and kill switch must be
// in place first: a session never opens before the kill switch).
func Split(changes []Change) (before, after []Change) {
	for _, c := range changes {
		if c.Action == ActionStop {
			before = append(before, c)
		} else {
			after = append(after, c)
		}
	}
	return before, after
}

// Apply carries out changes in order. Every configuration is checked
// with its engine's parser before anything starts or reloads.
func (m *Manager) Apply(ctx context.Context, changes []Change) error {
	for _, c := range changes {
		if c.Speaker != nil {
			if err := m.Check(ctx, *c.Speaker); err != nil {
				return err
			}
		}
	}
	for _, c := range changes {
		var err error
		switch c.Action {
		case ActionStart:
			err = m.Start(ctx, *c.Speaker)
		case ActionReload:
			err = m.Reload(ctx, *c.Speaker)
		case ActionStop:
			err = m.Stop(ctx, c.Netns)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// current reports whether the running instance's files are what the
// speaker generates now (same engine, same files).
func (m *Manager) current(in *instance, s Speaker) bool {
	b, err := os.ReadFile(in.metaFile())
	if err != nil {
		return false
	}
	var rec instance
	if json.Unmarshal(b, &rec) != nil || rec.Engine != in.Engine {
		return false
	}
	for _, f := range in.engine().files(s, in) {
		have, err := os.ReadFile(in.path(f.name))
		if err != nil || !bytes.Equal(have, f.data) {
			return false
		}
	}
	return true
}

// Check generates the speaker's files into a scratch directory and has
// the engine's own parser check them (bird -p; vtysh -C and bgpd -C): a
// configuration the engine would refuse is an error before anything runs.
func (m *Manager) Check(ctx context.Context, s Speaker) error {
	dir, err := os.MkdirTemp("", "tunroute-bgp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	in := m.instanceOf(s)
	in.Dir = dir
	if err := m.write(in, s); err != nil {
		return err
	}
	if err := in.engine().check(ctx, m, in); err != nil {
		return fmt.Errorf("bgp of %s: the generated %s configuration does not parse: %w", s.where(), in.Engine, err)
	}
	return nil
}

// Start writes the speaker's run directory and starts its instance in
// its namespace. An instance already running there is reloaded instead
// (or restarted, if its engine changed).
func (m *Manager) Start(ctx context.Context, s Speaker) error {
	in := m.instanceOf(s)
	if _, running := m.running(in); running {
		return m.Reload(ctx, s)
	}
	if err := m.Stop(ctx, s.Netns); err != nil { // what a dead or other-engine instance left
		return err
	}
	if err := m.write(in, s); err != nil {
		return err
	}
	e := in.engine()
	if err := e.check(ctx, m, in); err != nil {
		return fmt.Errorf("bgp of %s: %w", s.where(), err)
	}
	if err := e.start(ctx, m, in); err != nil {
		return fmt.Errorf("bgp of %s: %w", s.where(), err)
	}
	return nil
}

// Reload rewrites the speaker's files and has the running instance take
// them: BIRD re-reads its configuration (birdc configure) and
// re-evaluates only the sessions whose filters changed; FRR's bgpd is
// restarted (its sessions come up again). A changed engine is a stop
// and a start.
func (m *Manager) Reload(ctx context.Context, s Speaker) error {
	in := m.instanceOf(s)
	if _, running := m.running(in); !running || m.recordedEngine(in) != in.Engine {
		if err := m.Stop(ctx, s.Netns); err != nil {
			return err
		}
		return m.Start(ctx, s)
	}
	e := in.engine()
	old := map[string][]byte{}
	for _, f := range e.files(s, in) {
		old[f.name], _ = os.ReadFile(in.path(f.name))
	}
	if err := m.write(in, s); err != nil {
		return err
	}
	if err := e.check(ctx, m, in); err != nil {
		for name, b := range old { // the running instance keeps its configuration
			os.WriteFile(in.path(name), b, 0o600)
		}
		return fmt.Errorf("bgp of %s: %w", s.where(), err)
	}
	if err := e.reload(ctx, m, in); err != nil {
		return fmt.Errorf("bgp of %s: %w", s.where(), err)
	}
	return nil
}

func (m *Manager) recordedEngine(in *instance) string {
	b, err := os.ReadFile(in.metaFile())
	if err != nil {
		return ""
	}
	var rec instance
	if json.Unmarshal(b, &rec) != nil {
		return ""
	}
	return rec.Engine
}

// Stop stops the instance running in netns and removes its run
// directory. Stopping what is not running is not an error.
func (m *Manager) Stop(ctx context.Context, netns string) error {
	in := &instance{Dir: filepath.Join(m.base(), dirName(netns)), Netns: netns}
	if b, err := os.ReadFile(in.metaFile()); err == nil {
		if err := json.Unmarshal(b, in); err != nil {
			return fmt.Errorf("%s: %w", in.metaFile(), err)
		}
	}
	if err := m.stopProcesses(ctx, in); err != nil {
		return err
	}
	if err := os.RemoveAll(in.Dir); err != nil {
		return err
	}
	os.Remove(m.base()) // only when empty
	return nil
}

// StopAll stops every instance started for the top namespace top (what
// `down` must do before the domains' namespaces go), whatever the config
// says now.
func (m *Manager) StopAll(ctx context.Context, top string) error {
	ins, err := m.instances(top)
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range ins {
		if err := m.Stop(ctx, in.Netns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// write puts the speaker's files and record in its run directory,
// readable only by root and the engine's user. The base directory is
// only traversable by others, so a daemon that drops its privileges
// (FRR's) reaches its own directory.
func (m *Manager) write(in *instance, s Speaker) error {
	if err := os.MkdirAll(m.base(), 0o711); err != nil {
		return err
	}
	if err := os.MkdirAll(in.Dir, 0o700); err != nil {
		return err
	}
	meta, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if err := os.WriteFile(in.metaFile(), meta, 0o600); err != nil {
		return err
	}
	e := in.engine()
	for _, f := range e.files(s, in) {
		if err := os.WriteFile(in.path(f.name), f.data, 0o600); err != nil {
			return err
		}
	}
	if u := e.user(); u != "" {
		return chownTree(in.Dir, u)
	}
	return nil
}
