package config

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// VPN is a connection whose daemon calls `tunroute hook` when it comes up
// and goes down; its hook supplies runtime facts (tunnel device and
// addresses, the server's real address, the original gateway, DNS).
type VPN struct {
	Name string
	// Type is the daemon: "openvpn", "tinc" or "strongswan".
	Type string
	// Device is the tunnel device when the daemon does not report one
	// (strongSwan with kernel-libipsec: ipsec0); "" otherwise.
	Device string
	// Servers are the servers' real addresses known in advance, with port
	// and transport where given: the kill switch lets the daemon reach
	// them from the first apply, before any hook has run, and after a
	// restart.
	Servers []Endpoint
	// PushedRoutes: install the routes the VPN pushes (OpenVPN's
	// route_network_N with route-noexec, tinc's subnets); default true.
	PushedRoutes bool

	positions
}

// Endpoint is an address with an optional port and transport.
type Endpoint struct {
	Addr  netip.Addr
	Port  uint16
	Proto string // "udp", "tcp" or "" (both)
}

// VPNTypes are the daemons tunroute has hooks for.
var VPNTypes = []string{"openvpn", "tinc", "strongswan"}

// Selector sends matching traffic to an identity's table (port selectors:
// telnet through the tunnel, ssh around it). Native rule selectors are
// used where they suffice; a cgroup needs a firewall mark.
type Selector struct {
	Via    string
	Proto  uint8
	SPort  *state.PortRange
	DPort  *state.PortRange
	UID    *state.UIDRange
	Cgroup string
	From   []netip.Prefix
	To     []netip.Prefix
	// IIF selects forwarded traffic that came in on this device.
	IIF string

	positions
}

// KillSwitch is the security policy: traffic may leave by a non-tunnel
// interface only if allowed in clear; everything else is dropped and
// counted. It stays in the kernel when the VPN or tunroute dies.
type KillSwitch struct {
	// Tunnels are identities whose devices count as tunnels. Empty means
	// the identities with a vpn and the redirect's identity.
	Tunnels []string
	// Allow lists what may leave in clear.
	Allow []Allow
	// DHCP allows DHCP and DHCPv6 requests in clear (default true).
	DHCP bool
	// DNS, if given, are the only resolvers DNS may go to (port 53, UDP
	// and TCP), in a tunnel or not. DNSFromVPN adds the resolvers the
	// VPNs push.
	DNS        []netip.Addr
	DNSGiven   bool
	DNSFromVPN bool
	// Forward also guards forwarded traffic (default true).
	Forward bool

	positions
}

// Allow is traffic that may leave in clear: to some destinations, or
// from some source addresses (e.g. the outside identity's, for the dual
// identity's deliberate `ssh -b OUTSIDE`), optionally only some protocol and ports.
type Allow struct {
	To     []netip.Prefix
	From   []netip.Prefix
	Proto  uint8
	Ports  []state.PortRange
	SPorts []state.PortRange
}

func (d *decoder) vpns(v node) error {
	items, err := v.seqOnly()
	if err != nil {
		return err
	}
	for _, it := range items {
		m, err := it.mapping("name", "type", "servers", "pushed_routes", "device")
		if err != nil {
			return err
		}
		vpn := &VPN{positions: m.at, PushedRoutes: true}
		if vpn.Name, err = requiredName(m); err != nil {
			return err
		}
		if d.cfg.VPN(vpn.Name) != nil {
			return m.at("name").Errorf("vpn %q is defined twice", vpn.Name)
		}
		if vpn.Type, err = requiredString(m, "type"); err != nil {
			return err
		}
		if vpn.Type == "wireguard" {
			return m.at("type").Errorf("WireGuard has no daemon to call a hook: declare the device under devices: (type: wireguard; table: auto gives wg-quick's full tunnel)")
		}
		if !contains(VPNTypes, vpn.Type) {
			return m.at("type").Errorf("unknown VPN type %q; expected one of: %s", vpn.Type, strings.Join(VPNTypes, ", "))
		}
		if n, ok := m.get("servers"); ok {
			vpn.Servers, err = scalarItems(n, func(it node, s string) (Endpoint, error) {
				e, err := ParseEndpoint(s)
				if err != nil {
					return e, it.pos.Errorf("%v", err)
				}
				return e, nil
			})
			if err != nil {
				return err
			}
		}
		if n, ok := m.get("pushed_routes"); ok {
			if vpn.PushedRoutes, err = boolValue(n); err != nil {
				return err
			}
		}
		if n, ok := m.get("device"); ok {
			if vpn.Type != "strongswan" {
				return n.pos.Errorf("device is for a strongswan vpn (its daemon reports no device); %s reports its own", vpn.Type)
			}
			if vpn.Device, err = n.scalar(); err != nil {
				return err
			}
			if err := checkDevice(n.pos, vpn.Device); err != nil {
				return err
			}
		}
		d.cfg.VPNs = append(d.cfg.VPNs, vpn)
	}
	return nil
}

func (d *decoder) vpnRef(n node) (string, error) {
	s, err := n.scalar()
	if err != nil {
		return "", err
	}
	if err := refTo(n.pos, d.cfg.VPNs, "vpn", "vpns", s); err != nil {
		return "", err
	}
	return s, nil
}

// localSender reads the keys that match the local process that sent a
// packet: uid (a user or a range of them) and cgroup (a cgroup v2 path).
func localSender(m *mapping, uid **state.UIDRange, cgroup *string) error {
	if n, ok := m.get("uid"); ok {
		lo, hi, err := rangeValue(n, 0, 0xfffffffe)
		if err != nil {
			return err
		}
		*uid = &state.UIDRange{Start: uint32(lo), End: uint32(hi)}
	}
	if n, ok := m.get("cgroup"); ok {
		c, err := n.scalar()
		if err != nil {
			return err
		}
		c = strings.Trim(c, "/")
		if c == "" || strings.Contains(c, "..") || strings.ContainsAny(c, "\x00\n") {
			return n.pos.Errorf("%q is not a cgroup path (e.g. system.slice/foo.service)", c)
		}
		*cgroup = c
	}
	return nil
}

func (d *decoder) selector(v node) (*Selector, error) {
	m, err := v.mapping("via", "proto", "sport", "dport", "uid", "cgroup", "from", "to", "iif")
	if err != nil {
		return nil, err
	}
	s := &Selector{positions: m.at}
	n, ok := m.get("via")
	if !ok {
		return nil, m.at("via").Errorf("missing: name the identity the selected traffic goes through")
	}
	if s.Via, err = d.viaRef(n); err != nil {
		return nil, err
	}
	if n, ok := m.get("proto"); ok {
		if s.Proto, err = protoValue(n); err != nil {
			return nil, err
		}
	}
	for _, key := range []string{"sport", "dport"} {
		n, ok := m.get(key)
		if !ok {
			continue
		}
		if s.Proto != 6 && s.Proto != 17 && s.Proto != 132 {
			return nil, n.pos.Errorf("ports need proto: tcp, udp or sctp")
		}
		lo, hi, err := rangeValue(n, 1, 65535)
		if err != nil {
			return nil, err
		}
		r := &state.PortRange{Start: uint16(lo), End: uint16(hi)}
		if key == "sport" {
			s.SPort = r
		} else {
			s.DPort = r
		}
	}
	if err := localSender(m, &s.UID, &s.Cgroup); err != nil {
		return nil, err
	}
	if _, err := optPrefixes(m, "from", &s.From); err != nil {
		return nil, err
	}
	if _, err := optPrefixes(m, "to", &s.To); err != nil {
		return nil, err
	}
	if err := scalarsInto(m, []keyed[string]{{"iif", &s.IIF}}, deviceScalar); err != nil {
		return nil, err
	}
	if s.Proto == 0 && s.UID == nil && s.Cgroup == "" && s.From == nil && s.To == nil && s.IIF == "" {
		return nil, m.pos.Errorf("a selector needs at least one of proto, sport, dport, uid, cgroup, from, to, iif")
	}
	if s.Cgroup != "" && s.IIF != "" {
		return nil, m.at("cgroup").Errorf("a cgroup selects local processes; it cannot go with iif (forwarded traffic)")
	}
	if s.UID != nil && s.IIF != "" {
		return nil, m.at("uid").Errorf("a uid selects local processes; it cannot go with iif (forwarded traffic)")
	}
	return s, nil
}

func (d *decoder) killswitch(v node) (*KillSwitch, error) {
	m, err := v.mapping("tunnels", "allow", "dhcp", "dns", "forward")
	if err != nil {
		return nil, err
	}
	k := &KillSwitch{positions: m.at, DHCP: true, Forward: true}
	if n, ok := m.get("tunnels"); ok {
		items, err := n.list()
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			name, err := d.identityRef(it)
			if err != nil {
				return nil, err
			}
			k.Tunnels = append(k.Tunnels, name)
		}
	}
	if n, ok := m.get("allow"); ok {
		items, err := n.seqOnly()
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			am, err := it.mapping("to", "from", "proto", "port", "sport")
			if err != nil {
				return nil, err
			}
			var a Allow
			_, hasTo := am.get("to")
			_, hasFrom := am.get("from")
			if !hasTo && !hasFrom {
				return nil, am.at("to").Errorf("missing: give to (destinations) or from (source addresses), or both")
			}
			if hasTo {
				if a.To, err = prefixes(am, "to"); err != nil {
					return nil, err
				}
			}
			if hasFrom {
				if a.From, err = prefixes(am, "from"); err != nil {
					return nil, err
				}
			}
			if err := protoPorts(am, &a.Proto, []keyed[[]state.PortRange]{{"port", &a.Ports}, {"sport", &a.SPorts}}); err != nil {
				return nil, err
			}
			k.Allow = append(k.Allow, a)
		}
	}
	for _, b := range []struct {
		key string
		out *bool
	}{{"dhcp", &k.DHCP}, {"forward", &k.Forward}} {
		if n, ok := m.get(b.key); ok {
			if *b.out, err = boolValue(n); err != nil {
				return nil, err
			}
		}
	}
	if n, ok := m.get("dns"); ok {
		k.DNSGiven = true
		err := eachScalar(n, func(it node, s string) error {
			if s == "vpn" {
				k.DNSFromVPN = true
				return nil
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return it.pos.Errorf("%q is not an IP address or \"vpn\" (the resolvers the VPNs push)", s)
			}
			k.DNS = append(k.DNS, a)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return k, nil
}

var protoNames = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}

func protoValue(n node) (uint8, error) {
	s, err := n.scalar()
	if err != nil {
		return 0, err
	}
	if p, ok := protoNames[s]; ok {
		return p, nil
	}
	v, err := strconv.ParseUint(s, 0, 8)
	if err != nil || v == 0 {
		return 0, n.pos.Errorf("%q is not a protocol (tcp, udp, icmp, ipv6-icmp, sctp or a number 1-255)", s)
	}
	return uint8(v), nil
}

// rangeValue reads N or N-M.
func rangeValue(n node, min, max uint64) (uint64, uint64, error) {
	s, err := n.scalar()
	if err != nil {
		return 0, 0, err
	}
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 64)
	if err1 != nil || err2 != nil || a < min || b > max {
		return 0, 0, n.pos.Errorf("%q is not a number or range (N or N-M) within %d-%d", s, min, max)
	}
	if a > b {
		return 0, 0, n.pos.Errorf("%q: the range is reversed", s)
	}
	return a, b, nil
}

func boolValue(n node) (bool, error) {
	s, err := n.scalar()
	if err != nil {
		return false, err
	}
	switch s {
	case "true", "yes", "on":
		return true, nil
	case "false", "no", "off":
		return false, nil
	}
	return false, n.pos.Errorf("%q is not true or false", s)
}

// contiguous returns the length of the mask's run of set bits, or 0 if
// the set bits are not one run.
func contiguous(m uint32) int {
	if m == 0 {
		return 0
	}
	shifted := m >> bits.TrailingZeros32(m)
	if shifted&(shifted+1) != 0 {
		return 0
	}
	return bits.OnesCount32(m)
}

// ParseEndpoint reads "198.51.100.2", "198.51.100.2:1194", "198.51.100.2:1194/udp",
// "[2001:db8::1]:1194/udp" or "2001:db8::1".
func ParseEndpoint(s string) (Endpoint, error) {
	var e Endpoint
	rest, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		if proto != "udp" && proto != "tcp" {
			return e, fmt.Errorf("%q: the transport after / is udp or tcp", s)
		}
		e.Proto = proto
	}
	if a, err := netip.ParseAddr(rest); err == nil {
		if hasProto {
			return e, fmt.Errorf("%q: a transport needs a port (ADDR:PORT/%s)", s, proto)
		}
		e.Addr = a.Unmap()
		return e, nil
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return e, fmt.Errorf("%q is not ADDR, ADDR:PORT or ADDR:PORT/udp|tcp (IPv6 in brackets)", s)
	}
	e.Addr, e.Port = ap.Addr().Unmap(), ap.Port()
	return e, nil
}

// portList reads an optional list of ports and ranges under key, which
// needs a protocol with ports.
// protoPorts reads the proto key, then the port lists of ports, which
// need it.
func protoPorts(m *mapping, proto *uint8, ports []keyed[[]state.PortRange]) error {
	if n, ok := m.get("proto"); ok {
		p, err := protoValue(n)
		if err != nil {
			return err
		}
		*proto = p
	}
	for _, f := range ports {
		ps, err := portList(m, f.key, *proto)
		if err != nil {
			return err
		}
		*f.dst = ps
	}
	return nil
}

func portList(m *mapping, key string, proto uint8) ([]state.PortRange, error) {
	n, ok := m.get(key)
	if !ok {
		return nil, nil
	}
	if proto != 6 && proto != 17 && proto != 132 {
		return nil, n.pos.Errorf("ports need proto: tcp, udp or sctp")
	}
	items, err := n.list()
	if err != nil {
		return nil, err
	}
	var out []state.PortRange
	for _, it := range items {
		lo, hi, err := rangeValue(it, 1, 65535)
		if err != nil {
			return nil, err
		}
		out = append(out, state.PortRange{Start: uint16(lo), End: uint16(hi)})
	}
	return out, nil
}
