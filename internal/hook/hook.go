// Package hook turns the environment a VPN daemon gives its scripts into
// runtime facts. Every value is parsed and checked: a malformed or
// hostile value is an error naming the variable, never passed on.
package hook

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Event says whether a hook call brings a connection up or takes it down.
type Event int

const (
	// Up: store the facts and apply.
	Up Event = iota + 1
	// Down: forget the facts and apply (what went through the VPN is
	// withdrawn; the kill switch stays).
	Down
	// Ignore: a call that changes nothing tunroute cares about.
	Ignore
)

// Env is a hook's environment.
type Env map[string]string

// ParseEnv reads KEY=VALUE strings (os.Environ()).
func ParseEnv(kv []string) Env {
	e := Env{}
	for _, s := range kv {
		if k, v, ok := strings.Cut(s, "="); ok {
			e[k] = v
		}
	}
	return e
}

// EnvError is a bad or missing environment variable.
type EnvError struct {
	Var, Value, Msg string
}

func (e *EnvError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("environment variable %s: %s", e.Var, e.Msg)
	}
	return fmt.Sprintf("environment variable %s=%q: %s", e.Var, clip(e.Value), e.Msg)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

var devRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// device reads an interface name: at most 15 characters of letters,
// digits, '_', '.', '-' (stricter than the kernel, which is what a hook
// value deserves).
func (e Env) device(key string) (string, error) {
	v, ok := e[key]
	if !ok || v == "" {
		return "", &EnvError{Var: key, Msg: "missing"}
	}
	if !devRE.MatchString(v) || v == "." || v == ".." {
		return "", &EnvError{Var: key, Value: v, Msg: "not an interface name (1-15 of A-Z a-z 0-9 _ . -)"}
	}
	return v, nil
}

// addr reads an optional address; ok is false when the variable is absent.
func (e Env) addr(key string, want6 bool) (netip.Addr, bool, error) {
	v, ok := e[key]
	if !ok || v == "" {
		return netip.Addr{}, false, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false, &EnvError{Var: key, Value: v, Msg: "not an IP address"}
	}
	a = a.Unmap()
	if a.Is6() != want6 {
		return netip.Addr{}, false, &EnvError{Var: key, Value: v, Msg: fmt.Sprintf("not an IPv%d address", map[bool]int{false: 4, true: 6}[want6])}
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false, &EnvError{Var: key, Value: v, Msg: "not a unicast address"}
	}
	return a, true, nil
}

// setAddr sets *to to the optional address in key when it is there.
func (e Env) setAddr(key string, want6 bool, to *netip.Addr) error {
	a, ok, err := e.addr(key, want6)
	if ok {
		*to = a
	}
	return err
}

// port reads an optional port number.
func (e Env) port(key string) (uint16, error) {
	v, ok := e[key]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, &EnvError{Var: key, Value: v, Msg: "not a port number (1-65535)"}
	}
	return uint16(n), nil
}

// netmaskBits turns a dotted netmask into a prefix length.
func netmaskBits(key, v string) (int, error) {
	m, err := netip.ParseAddr(v)
	if err != nil || !m.Is4() {
		return 0, &EnvError{Var: key, Value: v, Msg: "not a netmask"}
	}
	b := m.As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for n&0x80000000 != 0 {
		ones++
		n <<= 1
	}
	if n != 0 {
		return 0, &EnvError{Var: key, Value: v, Msg: "not a contiguous netmask"}
	}
	return ones, nil
}
