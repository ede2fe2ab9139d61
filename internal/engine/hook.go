package engine

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/hook"
)

// HookCall is one call of a VPN daemon's hook script.
type HookCall struct {
	Kind hook.Kind
	// Args are the command-line arguments after the kind.
	Args []string
	Env  hook.Env
	// VPN is the config's name for the connection (--vpn); if empty, the
	// environment's TUNROUTE_VPN, or the config's only vpn of the kind.
	VPN string
}

// HookResult is what a hook call did.
type HookResult struct {
	// Ignored: the verb changes nothing tunroute cares about.
	Ignored bool
	// Said is one line for the daemon's log: which connection, what verb.
	Said   string
	Change *Change
	// Store is where the facts are kept.
	Store string
}

// ValidHook is a hook call checked against the config: the kind, the
// verb, the config's vpn it is about and the environment variables the
// kind reads, every one checked. It is what a hook hands to `tunroute
// run` over its socket (JSON), and what RecordHook records.
type ValidHook struct {
	Kind string   `json:"kind"`
	Verb string   `json:"verb"`
	VPN  string   `json:"vpn"`
	Env  hook.Env `json:"env"`
	// Config is the config file the call was checked against (absolute).
	Config string `json:"config"`
	// Ignored: the verb changes nothing tunroute cares about (never
	// sent: there is nothing to record).
	Ignored bool `json:"-"`
}

// Hook records what a VPN daemon's hook reports and applies the config
// with it, all-or-nothing: the new facts and the kernel change land
// together or not at all. A down verb keeps the connection's server
// endpoints (the kill switch must let the daemon reconnect) and drops
// the rest, so what went through the tunnel is withdrawn.
func (e *Engine) Hook(call HookCall) (*HookResult, error) {
	v, cfg, err := e.ValidateHook(call)
	if err != nil {
		return nil, err
	}
	if v.Ignored {
		return &HookResult{Ignored: true}, nil
	}
	return e.RecordHook(cfg, v)
}

// ValidateHook checks a hook call against the config (which it returns),
// touching nothing: no lock, no kernel, no facts; a verb that changes
// nothing is not checked further (nor is the config read). A malformed or hostile environment is an
// error naming the variable. The environment is checked as for an up
// verb even for a down, which uses none of it: such a call is not the
// VPN daemon's, and must not take the connection down.
func (e *Engine) ValidateHook(call HookCall) (*ValidHook, *config.Config, error) {
	kind := call.Kind.Name()
	verb, err := call.Kind.Verb(call.Args, call.Env)
	if err != nil {
		return nil, nil, fmt.Errorf("hook %s: %w", kind, err)
	}
	ev, err := call.Kind.Event(verb)
	if err != nil {
		return nil, nil, fmt.Errorf("hook %s: %w", kind, err)
	}
	file, err := filepath.Abs(e.ConfigFile())
	if err != nil {
		return nil, nil, err
	}
	if ev == hook.Ignore {
		return &ValidHook{Kind: kind, Verb: verb, Config: file, Ignored: true}, nil, nil
	}
	cfg, err := e.LoadConfig()
	if err != nil {
		return nil, nil, err
	}
	name := call.VPN
	if n, ok := call.Kind.(hook.VPNNamer); ok && name == "" && call.Env["TUNROUTE_VPN"] == "" {
		if v := cfg.AnyVPN(n.VPNName(call.Env)); v != nil && v.Type == kind {
			name = v.Name
		}
	}
	vpn, err := pickVPN(cfg, kind, name, call.Env)
	if err != nil {
		return nil, nil, fmt.Errorf("hook %s: %w", kind, err)
	}
	env := hook.Relevant(call.Kind, call.Env)
	// The facts so far only seed what a call adds (tinc's servers,
	// strongSwan's selector pairs): the checks of the environment are
	// the same without them.
	if _, _, err := call.Kind.Facts(hook.Call{VPN: vpn.Name, Verb: verb, Env: env, Setup: deviceSetup(cfg, vpn)}); err != nil {
		return nil, nil, fmt.Errorf("hook %s %s: %w; nothing was changed", kind, verb, err)
	}
	return &ValidHook{Kind: kind, Verb: verb, VPN: vpn.Name, Env: env, Config: file}, cfg, nil
}

// RecordHook records a validated hook call and applies cfg with it,
// under the engine lock. The call is checked again against cfg (the
// config may have changed since, and a call from a socket is checked
// like one from an environment).
func (e *Engine) RecordHook(cfg *config.Config, call *ValidHook) (*HookResult, error) {
	k, err := hook.Lookup(call.Kind)
	if err != nil {
		return nil, fmt.Errorf("hook: %w", err)
	}
	kind := k.Name()
	ev, err := k.Event(call.Verb)
	if err != nil {
		return nil, fmt.Errorf("hook %s: %w", kind, err)
	}
	if ev == hook.Ignore {
		return &HookResult{Ignored: true}, nil
	}
	vpn := cfg.AnyVPN(call.VPN)
	if vpn == nil || vpn.Type != kind {
		return nil, fmt.Errorf("hook %s: the config %s has no %s vpn named %q; nothing was changed", kind, cfg.File, kind, call.VPN)
	}
	verb, env := call.Verb, hook.Relevant(k, call.Env)
	unlock, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	f, err := e.LoadFacts()
	if err != nil {
		return nil, err
	}
	v, ev, err := k.Facts(hook.Call{VPN: vpn.Name, Verb: verb, Env: env, Prev: f.VPNs[vpn.Name], Setup: deviceSetup(cfg, vpn)})
	if err != nil {
		return nil, fmt.Errorf("hook %s %s: %w; nothing was changed", kind, verb, err)
	}
	res := &HookResult{Store: f.store.Dir()}
	if ev == hook.Down {
		prev := f.VPNs[vpn.Name]
		if prev == nil {
			prev = v
		}
		v = &facts.VPN{Name: prev.Name, Type: prev.Type, Device: prev.Device, Servers: prev.Servers, Down: true}
		res.Said = fmt.Sprintf("vpn %s (%s %s) is down; withdrawing what went through it", vpn.Name, kind, verb)
	} else {
		what := verb
		if d, ok := k.(hook.Detailer); ok {
			what += " " + d.Detail(env)
		}
		res.Said = fmt.Sprintf("vpn %s (%s %s) on %s", vpn.Name, kind, what, v.Device)
	}
	v.Updated = time.Now().UTC().Round(time.Second)
	if err := f.Record(e, v); err != nil {
		return nil, err
	}
	s, err := e.ObserveForPlan(cfg, f, true)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if res.Change, err = s.Plan(cfg, f); err != nil {
		return nil, err
	}
	if _, err := s.Apply(res.Change); err != nil {
		return res, fmt.Errorf("apply failed, nothing was changed (the facts were not recorded either): %w", err)
	}
	return res, nil
}

// pickVPN finds the config's vpn a hook call is about.
func pickVPN(cfg *config.Config, typ, name string, env hook.Env) (*config.VPN, error) {
	fromEnv := false
	if name == "" {
		name, fromEnv = env["TUNROUTE_VPN"], true
	}
	if name != "" {
		var err error
		v := cfg.AnyVPN(name) // VPN names are unique across the top level and the domains
		switch {
		case v == nil:
			err = fmt.Errorf("the config %s has no vpn of that name", cfg.File)
		case v.Type != typ:
			err = fmt.Errorf("vpn %q is of type %s, not %s", name, v.Type, typ)
		}
		if err != nil && fromEnv {
			return nil, &hook.EnvError{Var: "TUNROUTE_VPN", Value: name, Msg: err.Error()}
		}
		if err != nil {
			return nil, fmt.Errorf("--vpn %q: %w", name, err)
		}
		return v, nil
	}
	var found []*config.VPN
	for _, v := range cfg.AllVPNs() {
		if v.Type == typ {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("the config %s has no vpn of type %s", cfg.File, typ)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("the config %s has several %s vpns; name one with --vpn or TUNROUTE_VPN", cfg.File, typ)
}

// deviceSetup is what the config says about a connection's devices: its
// own device, and the route-based IPsec devices (xfrm by if_id, vti by
// key) of the config and its domains, which strongSwan names by if_id or
// mark.
func deviceSetup(cfg *config.Config, vpn *config.VPN) hook.StrongSwanSetup {
	s := hook.StrongSwanSetup{Device: vpn.Device}
	add := func(c *config.Config) {
		for _, d := range c.Devices {
			switch d.Type {
			case "xfrm":
				s.Devices = append(s.Devices, hook.StrongSwanDevice{Name: d.Name, Kind: d.Type, IfID: d.IfID})
			case "vti", "vti6":
				s.Devices = append(s.Devices, hook.StrongSwanDevice{Name: d.Name, Kind: d.Type, Mark: d.OKey})
			}
		}
	}
	add(cfg)
	for _, dm := range cfg.Domains {
		add(dm.Config)
	}
	return s
}
