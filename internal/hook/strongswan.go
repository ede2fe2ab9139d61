package hook

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/facts"
)

// strongSwanVerbs are PLUTO_VERB's values: charon's updown plugin calls
// the script once per CHILD_SA (one pair of traffic selectors) coming up
// or going down, -v6 for IPv6 selectors; -host when the selector is the
// host itself.
var strongSwanVerbs = map[string]Event{
	"up-host": Up, "up-client": Up, "up-host-v6": Up, "up-client-v6": Up,
	"down-host": Down, "down-client": Down, "down-host-v6": Down, "down-client-v6": Down,
}

// StrongSwanEvent maps PLUTO_VERB to what tunroute does. A down verb
// ends one pair of selectors; StrongSwan says whether the connection is
// down as a whole.
func StrongSwanEvent(env Env) (Event, error) {
	v := env["PLUTO_VERB"]
	if ev, ok := strongSwanVerbs[v]; ok {
		return ev, nil
	}
	if v == "" {
		return 0, &EnvError{Var: "PLUTO_VERB", Msg: "missing (tunroute hook strongswan is charon's updown script: swanctl's updown = or ipsec.conf's leftupdown=)"}
	}
	return 0, &EnvError{Var: "PLUTO_VERB", Value: v, Msg: "not an updown verb (up-host, up-client, down-host, down-client, each also -v6)"}
}

// StrongSwanDevice is a route-based IPsec device of the config, found by
// the if_id (an xfrm interface) or the mark (a VTI's okey) of the
// CHILD_SA that charon reports.
type StrongSwanDevice struct {
	Name string
	Kind string // "xfrm", "vti" or "vti6"
	IfID uint32
	Mark uint32
}

// StrongSwanSetup is what the config says about the connection: its
// device when charon does not name one (kernel-libipsec's ipsec0), and
// the route-based devices to match by if_id or mark.
type StrongSwanSetup struct {
	Device  string
	Devices []StrongSwanDevice
}

var (
	connRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	digitRE = regexp.MustCompile(`^[0-9]{1,10}$`)
)

// StrongSwan updates prev (the connection's facts so far; nil for none)
// with one updown call, after checking every PLUTO_* variable. Charon
// calls the script once per pair of traffic selectors, and again for the
// same pair (rekeying, a reauthentication, libreswan's repeated up): the
// pairs are a set, so a repeated call changes nothing, and the plan that
// follows is empty. The event is Down only when the last pair goes. The
// peer's transport (IKE on UDP 500, NAT-T on UDP 4500 or
// PLUTO_UDP_ENC, ESP) becomes the connection's servers, which the kill
// switch lets out in clear; the peer's selectors become the connection's
// routes (but 0.0.0.0/0 and ::/0: say `redirect:` for a full tunnel),
// through the device the CHILD_SA's if_id or mark names, or the one the
// config gives.
func StrongSwan(name string, env Env, prev *facts.VPN, setup StrongSwanSetup) (*facts.VPN, Event, error) {
	ev, err := StrongSwanEvent(env)
	if err != nil {
		return nil, 0, err
	}
	if err := checkPluto(env); err != nil {
		return nil, 0, err
	}
	verb := env["PLUTO_VERB"]
	v6 := strings.HasSuffix(verb, "-v6")
	if _, err := env.anyAddr("PLUTO_ME"); err != nil {
		return nil, 0, err
	}
	peer, err := env.anyAddr("PLUTO_PEER")
	if err != nil {
		return nil, 0, err
	}
	myTS, err := env.selector("PLUTO_MY_CLIENT", v6)
	if err != nil {
		return nil, 0, err
	}
	peerTS, err := env.selector("PLUTO_PEER_CLIENT", v6)
	if err != nil {
		return nil, 0, err
	}
	dev, err := strongSwanDevice(env, setup)
	if err != nil {
		return nil, 0, err
	}
	v := &facts.VPN{Name: name, Type: "strongswan"}
	if prev != nil && !prev.Down {
		cp := *prev
		cp.Addrs = slices.Clone(prev.Addrs)
		cp.Servers = slices.Clone(prev.Servers)
		cp.Routes = slices.Clone(prev.Routes)
		cp.Selectors = slices.Clone(prev.Selectors)
		cp.DNS = slices.Clone(prev.DNS)
		v = &cp
	}
	v.Device = dev
	pair := myTS.String() + "=" + peerTS.String()
	v.Selectors = slices.DeleteFunc(v.Selectors, func(s string) bool { return s == pair })
	if ev == Up {
		v.Selectors = append(v.Selectors, pair)
	}
	// The peer's transport, whatever the call: a down must still let
	// charon reach the peer again.
	udpEnc := uint16(4500)
	if p, err := env.port("PLUTO_UDP_ENC"); err != nil {
		return nil, 0, err
	} else if p != 0 {
		udpEnc = p
	}
	for _, e := range []facts.Endpoint{{Addr: peer, Port: 500, Proto: "udp"}, {Addr: peer, Port: udpEnc, Proto: "udp"}, {Addr: peer, Proto: "esp"}} {
		if !slices.Contains(v.Servers, e) {
			v.Servers = append(v.Servers, e)
		}
	}
	// The routes are the peer selectors of the pairs still up.
	v.Routes = v.Routes[:0]
	for _, s := range v.Selectors {
		_, p, _ := strings.Cut(s, "=")
		if pfx, err := netip.ParsePrefix(p); err == nil && pfx.Bits() > 0 && !slices.Contains(v.Routes, pfx) {
			v.Routes = append(v.Routes, pfx)
		}
	}
	if ev == Up {
		for _, key := range sourceIPKeys(env, "PLUTO_MY_SOURCEIP") {
			a, err := env.anyAddr(key)
			if err != nil {
				return nil, 0, err
			}
			p := netip.PrefixFrom(a, a.BitLen())
			if !slices.Contains(v.Addrs, p) {
				v.Addrs = append(v.Addrs, p)
			}
		}
		for _, key := range plutoNumbered(env, "PLUTO_DNS4_", "PLUTO_DNS6_") {
			a, err := env.anyAddr(key)
			if err != nil {
				return nil, 0, err
			}
			if !slices.Contains(v.DNS, a) {
				v.DNS = append(v.DNS, a)
			}
		}
	}
	if len(v.Selectors) == 0 {
		return v, Down, nil
	}
	return v, Up, nil
}

// strongSwanDevice is the device the CHILD_SA's traffic goes through: the
// xfrm interface with its if_id, the VTI with its mark, or the config's.
func strongSwanDevice(env Env, setup StrongSwanSetup) (string, error) {
	if id, err := env.u32("PLUTO_IF_ID_OUT"); err != nil {
		return "", err
	} else if id != 0 {
		for _, d := range setup.Devices {
			if d.Kind == "xfrm" && d.IfID == id {
				return d.Name, nil
			}
		}
		if setup.Device != "" {
			return setup.Device, nil
		}
		return "", &EnvError{Var: "PLUTO_IF_ID_OUT", Value: env["PLUTO_IF_ID_OUT"], Msg: "no xfrm device of the config has this if_id (declare one under devices:, or give the vpn a device)"}
	}
	if mark, _, ok, err := env.mark("PLUTO_MARK_OUT"); err != nil {
		return "", err
	} else if ok && mark != 0 {
		for _, d := range setup.Devices {
			if (d.Kind == "vti" || d.Kind == "vti6") && d.Mark == mark {
				return d.Name, nil
			}
		}
		if setup.Device != "" {
			return setup.Device, nil
		}
		return "", &EnvError{Var: "PLUTO_MARK_OUT", Value: env["PLUTO_MARK_OUT"], Msg: "no vti device of the config has this mark as its key (declare one under devices:, or give the vpn a device)"}
	}
	if setup.Device != "" {
		return setup.Device, nil
	}
	return "", &EnvError{Var: "PLUTO_IF_ID_OUT", Msg: "missing, and no PLUTO_MARK_OUT either: tunroute routes through a device (an xfrm interface with if_id_out, a VTI with mark_out, or the vpn's device: such as kernel-libipsec's ipsec0)"}
}

// checkPluto checks every PLUTO_* variable, also those tunroute does not
// use: a call whose environment is malformed or hostile is not charon's.
func checkPluto(env Env) error {
	for k, v := range env {
		if !strings.HasPrefix(k, "PLUTO_") {
			continue
		}
		var err error
		switch {
		case k == "PLUTO_VERB":
		case k == "PLUTO_VERSION":
			if v != "1.1" {
				err = &EnvError{Var: k, Value: v, Msg: "not charon's updown version 1.1"}
			}
		case k == "PLUTO_CONNECTION":
			if !connRE.MatchString(v) {
				err = &EnvError{Var: k, Value: v, Msg: "not a connection name (1-64 of A-Z a-z 0-9 _ . -)"}
			}
		case k == "PLUTO_INTERFACE":
			if v != "" && v != "unknown" {
				_, err = env.device(k)
			}
		case k == "PLUTO_PROTO":
			if v != "esp" && v != "ah" {
				err = &EnvError{Var: k, Value: v, Msg: "not esp or ah"}
			}
		case k == "PLUTO_REQID" || k == "PLUTO_UNIQUEID" || k == "PLUTO_IF_ID_IN" || k == "PLUTO_IF_ID_OUT":
			_, err = env.u32(k)
		case k == "PLUTO_UDP_ENC":
			_, err = env.port(k)
		case k == "PLUTO_MY_PORT" || k == "PLUTO_PEER_PORT":
			if !digitRE.MatchString(v) || len(v) > 5 {
				err = &EnvError{Var: k, Value: v, Msg: "not a port number (0-65535)"}
			} else if n, _ := strconv.Atoi(v); n > 65535 {
				err = &EnvError{Var: k, Value: v, Msg: "not a port number (0-65535)"}
			}
		case k == "PLUTO_MY_PROTOCOL" || k == "PLUTO_PEER_PROTOCOL":
			if n, e := strconv.ParseUint(v, 10, 8); e != nil || n > 255 {
				err = &EnvError{Var: k, Value: v, Msg: "not an IP protocol number (0-255)"}
			}
		case k == "PLUTO_MARK_IN" || k == "PLUTO_MARK_OUT":
			_, _, _, err = env.mark(k)
		case k == "PLUTO_ME" || k == "PLUTO_PEER" || strings.HasPrefix(k, "PLUTO_MY_SOURCEIP") ||
			strings.HasPrefix(k, "PLUTO_PEER_SOURCEIP") || strings.HasPrefix(k, "PLUTO_DNS4_") || strings.HasPrefix(k, "PLUTO_DNS6_"):
			_, err = env.anyAddr(k)
		case k == "PLUTO_MY_CLIENT" || k == "PLUTO_PEER_CLIENT":
			_, err = env.selector(k, strings.HasSuffix(env["PLUTO_VERB"], "-v6"))
		case k == "PLUTO_HOST_ACCESS" || k == "PLUTO_IPCOMP":
			if v != "1" {
				err = &EnvError{Var: k, Value: v, Msg: "not 1"}
			}
		default:
			// Identities (PLUTO_MY_ID, PLUTO_PEER_ID, PLUTO_XAUTH_ID) and
			// anything newer: text, but no control characters.
			if len(v) > 512 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				err = &EnvError{Var: k, Value: v, Msg: "holds control characters or is too long"}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// anyAddr reads a required unicast address of either family.
func (e Env) anyAddr(key string) (netip.Addr, error) {
	v := e[key]
	if v == "" {
		return netip.Addr{}, &EnvError{Var: key, Msg: "missing"}
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, &EnvError{Var: key, Value: v, Msg: "not an IP address"}
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, &EnvError{Var: key, Value: v, Msg: "not a unicast address"}
	}
	return a, nil
}

// selector reads a traffic selector as charon gives it: a prefix
// ("10.40.0.1/32", "0.0.0.0/0") of the verb's family.
func (e Env) selector(key string, v6 bool) (netip.Prefix, error) {
	v := e[key]
	if v == "" {
		return netip.Prefix{}, &EnvError{Var: key, Msg: "missing"}
	}
	p, err := netip.ParsePrefix(v)
	if err != nil || p.Addr().Zone() != "" || p.Masked() != p {
		return netip.Prefix{}, &EnvError{Var: key, Value: v, Msg: "not a network prefix (ADDR/LEN without host bits)"}
	}
	if p.Addr().Is6() != v6 {
		return netip.Prefix{}, &EnvError{Var: key, Value: v, Msg: "of the other family than PLUTO_VERB says (-v6 for IPv6)"}
	}
	return p, nil
}

// u32 reads an optional unsigned 32-bit number (decimal or 0x hex).
func (e Env) u32(key string) (uint32, error) {
	v := e[key]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, &EnvError{Var: key, Value: v, Msg: "not a number (0-4294967295)"}
	}
	return uint32(n), nil
}

// mark reads charon's "VALUE/MASK" (each decimal or 0x hex); ok is false
// when the variable is absent.
func (e Env) mark(key string) (value, mask uint32, ok bool, err error) {
	v := e[key]
	if v == "" {
		return 0, 0, false, nil
	}
	val, msk, found := strings.Cut(v, "/")
	a, err1 := strconv.ParseUint(val, 0, 32)
	b, err2 := strconv.ParseUint(msk, 0, 32)
	if !found || err1 != nil || err2 != nil {
		return 0, 0, false, &EnvError{Var: key, Value: v, Msg: "not VALUE/MASK (e.g. 256/0x00000f00)"}
	}
	if uint32(a)&^uint32(b) != 0 {
		return 0, 0, false, &EnvError{Var: key, Value: v, Msg: "the value has bits outside the mask"}
	}
	return uint32(a), uint32(b), true, nil
}

// sourceIPKeys are PLUTO_MY_SOURCEIP and its numbered forms present.
func sourceIPKeys(env Env, base string) []string {
	var keys []string
	if env[base] != "" {
		keys = append(keys, base)
	}
	return append(keys, plutoNumbered(env, base+"4_", base+"6_")...)
}

// plutoNumbered lists the variables PREFIXn present, sorted.
func plutoNumbered(env Env, prefixes ...string) []string {
	var keys []string
	for k := range env {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) && digitRE.MatchString(k[len(p):]) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}
