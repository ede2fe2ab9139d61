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
	// Facts reads the connection's facts from one call's environment;
	// prev are the connection's facts so far (nil if none), for daemons
	// that report a connection over several calls.
	Facts(vpn, verb string, env Env, prev *facts.VPN) (*facts.VPN, error)
}

var kinds = []Kind{openvpnKind{}, tincKind{}}

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

func (openvpnKind) Facts(vpn, verb string, env Env, prev *facts.VPN) (*facts.VPN, error) {
	return OpenVPN(vpn, env)
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

func (tincKind) Facts(vpn, verb string, env Env, prev *facts.VPN) (*facts.VPN, error) {
	if verb == "tinc-up" {
		prev = nil // a new session
	}
	return Tinc(vpn, verb, env, prev)
}
