package hook

import (
	"fmt"
	"strings"

	"github.com/tunroute/tunroute/internal/facts"
)

// Kind is one VPN daemon's hook interface: how its scripts are called and
// what their environment means. Adding a daemon is adding a Kind.
type Kind interface {
	// Name is the daemon's word on the command line (tunroute hook NAME)
	// and a vpn's `type` in the config.
	Name() string
	// Verb finds which script of the daemon's is calling: from the
	// environment, or the arguments after the kind.
	Verb(args []string, env Env) (string, error)
	// Event says what a verb does.
	Event(verb string) (Event, error)
	// Facts reads the connection's facts from one call and says what
	// the call does (a daemon that reports a connection over several
	// calls may say Up for a down verb while the connection lives on).
	Facts(c Call) (*facts.VPN, Event, error)
}

// Call is one call of a daemon's hook script.
type Call struct {
	VPN, Verb string
	Env       Env
	// Prev are the connection's facts so far (nil if none).
	Prev *facts.VPN
	// Setup is what the config says about the connection's devices.
	Setup StrongSwanSetup
}

// VPNNamer is a kind whose daemon names the connection in the
// environment (strongSwan's PLUTO_CONNECTION): the config's vpn of that
// name is the one meant, when no other names it.
type VPNNamer interface {
	VPNName(env Env) string
}

// Detailer is a kind whose calls carry a detail worth a log line: which
// pair of strongSwan's traffic selectors came up.
type Detailer interface {
	Detail(env Env) string
}

var kinds = []Kind{openvpnKind{}, tincKind{}, strongswanKind{}}

// Lookup returns the kind of a daemon by name.
func Lookup(name string) (Kind, error) {
	for _, k := range kinds {
		if k.Name() == name {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%q is not a VPN tunroute has a hook for (%s)", name, strings.Join(Names(), ", "))
}

// Names lists the daemons tunroute has hooks for.
func Names() []string {
	var out []string
	for _, k := range kinds {
		out = append(out, k.Name())
	}
	return out
}

type openvpnKind struct{}

func (openvpnKind) Name() string { return "openvpn" }

// Verb is OpenVPN's script_type; by hand, `tunroute hook openvpn up`.
func (openvpnKind) Verb(args []string, env Env) (string, error) {
	if v := env["script_type"]; v != "" || len(args) == 0 {
		return v, nil
	}
	return args[0], nil
}

func (openvpnKind) Event(verb string) (Event, error) { return OpenVPNEvent(verb) }

func (openvpnKind) Facts(c Call) (*facts.VPN, Event, error) {
	ev, err := OpenVPNEvent(c.Verb)
	if err != nil {
		return nil, 0, err
	}
	v, err := OpenVPN(c.VPN, c.Env)
	return v, ev, err
}

type tincKind struct{}

func (tincKind) Name() string { return "tinc" }

// Verb is the script's name, given on the command line: tinc does not
// put it in the environment.
func (tincKind) Verb(args []string, env Env) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("give the script's verb (tinc-up, tinc-down, host-up, host-down, subnet-up, subnet-down)")
	}
	return args[0], nil
}

func (tincKind) Event(verb string) (Event, error) { return TincEvent(verb) }

func (tincKind) Facts(c Call) (*facts.VPN, Event, error) {
	ev, err := TincEvent(c.Verb)
	if err != nil {
		return nil, 0, err
	}
	prev := c.Prev
	if c.Verb == "tinc-up" {
		prev = nil // a new session
	}
	v, err := Tinc(c.VPN, c.Verb, c.Env, prev)
	return v, ev, err
}

type strongswanKind struct{}

func (strongswanKind) Name() string { return "strongswan" }

// Verb is PLUTO_VERB: charon's updown plugin passes no arguments.
func (strongswanKind) Verb(args []string, env Env) (string, error) { return env["PLUTO_VERB"], nil }

func (strongswanKind) Event(verb string) (Event, error) {
	return StrongSwanEvent(Env{"PLUTO_VERB": verb})
}

func (strongswanKind) Facts(c Call) (*facts.VPN, Event, error) {
	return StrongSwan(c.VPN, c.Env, c.Prev, c.Setup)
}

func (strongswanKind) VPNName(env Env) string { return env["PLUTO_CONNECTION"] }

// Detail is the pair of traffic selectors a call is about.
func (strongswanKind) Detail(env Env) string {
	return env["PLUTO_MY_CLIENT"] + "=" + env["PLUTO_PEER_CLIENT"]
}
