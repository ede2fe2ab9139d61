package hook

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/facts"
)

// Tinc verbs: the script tinc runs (tinc-up, host-up, ...), given on the
// command line because tinc does not put it in the environment.
var tincVerbs = map[string]Event{
	"tinc-up": Up, "host-up": Up, "subnet-up": Up,
	"tinc-down": Down, "host-down": Up, "subnet-down": Up,
}

// TincEvent maps a tinc script name to what tunroute does. host-down and
// subnet-down update the facts (a server or a subnet goes away) and are
// Up events; only tinc-down takes the connection down.
func TincEvent(verb string) (Event, error) {
	if ev, ok := tincVerbs[verb]; ok {
		return ev, nil
	}
	return 0, &EnvError{Var: "verb", Value: verb, Msg: "not a tinc script (tinc-up, tinc-down, host-up, host-down, subnet-up, subnet-down)"}
}

// Tinc updates prev (nil at tinc-up) with one tinc script call. The
// environment is the one tincd gives: INTERFACE always; NODE,
// REMOTEADDRESS, REMOTEPORT for host-up/host-down; SUBNET for subnet-*.
// A node reachable at an address is a server whose real address must stay
// on the original path; tinc uses UDP and TCP on the same port.
func Tinc(name, verb string, env Env, prev *facts.VPN) (*facts.VPN, error) {
	v := &facts.VPN{Name: name, Type: "tinc"}
	if prev != nil {
		cp := *prev
		cp.Servers = append([]facts.Endpoint(nil), prev.Servers...)
		cp.Routes = append([]netip.Prefix(nil), prev.Routes...)
		v = &cp
	}
	dev, err := env.device("INTERFACE")
	if err != nil {
		return nil, err
	}
	v.Device = dev
	switch verb {
	case "host-up", "host-down":
		if _, err := env.nodeName("NODE"); err != nil {
			return nil, err
		}
		a, ok, err := env.addr("REMOTEADDRESS", false)
		if err != nil {
			if a6, ok6, err6 := env.addr("REMOTEADDRESS", true); err6 == nil {
				a, ok, err = a6, ok6, nil
			}
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &EnvError{Var: "REMOTEADDRESS", Msg: "missing"}
		}
		port, err := env.port("REMOTEPORT")
		if err != nil {
			return nil, err
		}
		e := facts.Endpoint{Addr: a, Port: port}
		v.Servers = without(v.Servers, e)
		if verb == "host-up" {
			v.Servers = append(v.Servers, e)
		}
	case "subnet-up", "subnet-down":
		// tinc 1.0 runs subnet-up for the node's own Subnets too: they
		// are this host's, not routes the mesh pushes to it (taken as
		// pushed, a LAN subnet would go into the tunnel, or clash with
		// the LAN's connected route).
		if node, err := env.nodeName("NODE"); err == nil && node == tincLocalName(env) {
			return v, nil
		}
		s := env["SUBNET"]
		p, err := parseTincSubnet(s)
		if err != nil {
			return nil, &EnvError{Var: "SUBNET", Value: s, Msg: "not a subnet"}
		}
		v.Routes = without(v.Routes, p)
		if verb == "subnet-up" {
			v.Routes = append(v.Routes, p)
		}
	}
	return v, nil
}

// TincConfRoot holds tinc's networks, /etc/tinc/NETNAME/tinc.conf.
var TincConfRoot = "/etc/tinc"

// tincLocalName is this node's name: NAME from the environment (tinc 1.0
// sets it), else the Name in NETNAME's tinc.conf; "" if neither says.
func tincLocalName(env Env) string {
	if n, err := env.nodeName("NAME"); err == nil {
		return n
	}
	net := env["NETNAME"]
	if net == "" || strings.ContainsAny(net, "/\x00") || net == "." || net == ".." {
		return ""
	}
	f, err := os.Open(filepath.Join(TincConfRoot, net, "tinc.conf"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Name") {
			if n, err := (Env{"NAME": strings.TrimSpace(v)}).nodeName("NAME"); err == nil {
				return n
			}
		}
	}
	return ""
}

// parseTincSubnet reads "10.20.0.1/32", "10.20.0.0/24#10" (weight) or a
// bare address.
func parseTincSubnet(s string) (netip.Prefix, error) {
	if subnet, weight, ok := strings.Cut(s, "#"); ok {
		if _, err := strconv.ParseUint(weight, 10, 31); err != nil {
			return netip.Prefix{}, fmt.Errorf("weight %q is not a number", weight)
		}
		s = subnet
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (e Env) nodeName(key string) (string, error) {
	v := e[key]
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "", &EnvError{Var: key, Value: v, Msg: "not a tinc node name (letters, digits, _)"}
		}
	}
	if v == "" {
		return "", &EnvError{Var: key, Msg: "missing"}
	}
	return v, nil
}

// without returns xs less every element equal to x, reusing xs's array.
func without[T comparable](xs []T, x T) []T {
	return slices.DeleteFunc(xs, func(y T) bool { return y == x })
}
