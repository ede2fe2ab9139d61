package engine

import (
	"fmt"
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

// Hook records what a VPN daemon's hook reports and applies the config
// with it, all-or-nothing: the new facts and the kernel change land
// together or not at all. A down verb keeps the connection's server
// endpoints (the kill switch must let the daemon reconnect) and drops
// the rest, so what went through the tunnel is withdrawn.
func (e *Engine) Hook(call HookCall) (*HookResult, error) {
	kind := call.Kind.Name()
	verb, err := call.Kind.Verb(call.Args, call.Env)
	if err != nil {
		return nil, fmt.Errorf("hook %s: %w", kind, err)
	}
	ev, err := call.Kind.Event(verb)
	if err != nil {
		return nil, fmt.Errorf("hook %s: %w", kind, err)
	}
	if ev == hook.Ignore {
		return &HookResult{Ignored: true}, nil
	}
	cfg, err := e.LoadConfig()
	if err != nil {
		return nil, err
	}
	name := call.VPN
	if n, ok := call.Kind.(hook.VPNNamer); ok && name == "" && call.Env["TUNROUTE_VPN"] == "" {
		if v := cfg.AnyVPN(n.VPNName(call.Env)); v != nil && v.Type == kind {
			name = v.Name
		}
	}
	vpn, err := pickVPN(cfg, kind, name, call.Env)
	if err != nil {
		return nil, fmt.Errorf("hook %s: %w", kind, err)
	}
	unlock, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	f, err := e.LoadFacts()
	if err != nil {
		return nil, err
	}
	// The environment is checked as for an up verb even for a down,
	// which uses none of it: a malformed or hostile one means the call is
	// not the daemon's, and must not take the connection down.
	v, ev, err := call.Kind.Facts(hook.Call{VPN: vpn.Name, Verb: verb, Env: call.Env, Prev: f.VPNs[vpn.Name], Setup: deviceSetup(cfg, vpn)})
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
		if d, ok := call.Kind.(hook.Detailer); ok {
			what += " " + d.Detail(call.Env)
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
