package state

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// nameTable maps small kernel numbers to the names iproute2 prints, so the
// JSON form reads like `ip -j` output while staying exact for unknown values.
type nameTable map[uint32]string

func (t nameTable) name(v uint32) string {
	if n, ok := t[v]; ok {
		return n
	}
	return strconv.FormatUint(uint64(v), 10)
}

func (t nameTable) parse(s string, max uint64) (uint32, error) {
	for v, n := range t {
		if n == s {
			return v, nil
		}
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil || v > max {
		return 0, fmt.Errorf("unknown value %q", s)
	}
	return uint32(v), nil
}

// Scope is a route or address scope (rtm_scope, ifa_scope).
type Scope uint8

const (
	ScopeUniverse Scope = 0
	ScopeSite     Scope = 200
	ScopeLink     Scope = 253
	ScopeHost     Scope = 254
	ScopeNowhere  Scope = 255
)

var scopeNames = nameTable{0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}

func (s Scope) String() string                { return scopeNames.name(uint32(s)) }
func (s Scope) MarshalText() ([]byte, error)  { return []byte(s.String()), nil }
func (s *Scope) UnmarshalText(b []byte) error { return parseInto(scopeNames, b, 255, s) }

// ParseScope parses an iproute2 scope name or number.
func ParseScope(s string) (Scope, error) {
	var v Scope
	return v, v.UnmarshalText([]byte(s))
}

// RouteType is rtm_type.
type RouteType uint8

const (
	RouteUnicast     RouteType = 1
	RouteLocal       RouteType = 2
	RouteBroadcast   RouteType = 3
	RouteAnycast     RouteType = 4
	RouteMulticast   RouteType = 5
	RouteBlackhole   RouteType = 6
	RouteUnreachable RouteType = 7
	RouteProhibit    RouteType = 8
	RouteThrow       RouteType = 9
	RouteNAT         RouteType = 10
	RouteXResolve    RouteType = 11
)

var routeTypeNames = nameTable{0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
	5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat", 11: "xresolve"}

func (t RouteType) String() string                { return routeTypeNames.name(uint32(t)) }
func (t RouteType) MarshalText() ([]byte, error)  { return []byte(t.String()), nil }
func (t *RouteType) UnmarshalText(b []byte) error { return parseInto(routeTypeNames, b, 255, t) }

// ParseRouteType parses an iproute2 route type name.
func ParseRouteType(s string) (RouteType, error) {
	var v RouteType
	return v, v.UnmarshalText([]byte(s))
}

// Protocol is a route or rule protocol (rtm_protocol, FRA_PROTOCOL, IFA_PROTO).
type Protocol uint8

var protocolNames = nameTable{0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static",
	8: "gated", 9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk",
	16: "dhcp", 17: "mrouted", 18: "keepalived", 42: "babel", 99: "openr", 116: ProtoName,
	186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp"}

func (p Protocol) String() string                { return protocolNames.name(uint32(p)) }
func (p Protocol) MarshalText() ([]byte, error)  { return []byte(p.String()), nil }
func (p *Protocol) UnmarshalText(b []byte) error { return parseInto(protocolNames, b, 255, p) }

func parseInto[T ~uint8 | ~uint32](t nameTable, b []byte, max uint64, out *T) error {
	v, err := t.parse(string(b), max)
	if err != nil {
		return err
	}
	*out = T(v)
	return nil
}

// flagSet marshals a bit set as a sorted list of names; unknown bits are
// kept as hex numbers so nothing is lost in a round trip.
type flagNames map[uint32]string

func (f flagNames) marshal(v uint32) ([]byte, error) {
	var out []string
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if v&bit == 0 {
			continue
		}
		if n, ok := f[bit]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("0x%x", bit))
		}
	}
	if out == nil {
		out = []string{}
	}
	sort.Strings(out)
	return json.Marshal(out)
}

func (f flagNames) unmarshal(b []byte) (uint32, error) {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return 0, err
	}
	var v uint32
outer:
	for _, n := range names {
		for bit, name := range f {
			if name == n {
				v |= bit
				continue outer
			}
		}
		if strings.HasPrefix(n, "0x") {
			x, err := strconv.ParseUint(n[2:], 16, 32)
			if err == nil {
				v |= uint32(x)
				continue
			}
		}
		return 0, fmt.Errorf("unknown flag %q", n)
	}
	return v, nil
}

// NexthopFlags are RTNH_F_* bits (per nexthop, and rtm_flags of a route).
type NexthopFlags uint32

const (
	NexthopDead       NexthopFlags = 0x1
	NexthopPervasive  NexthopFlags = 0x2
	NexthopOnlink     NexthopFlags = 0x4
	NexthopOffload    NexthopFlags = 0x8
	NexthopLinkdown   NexthopFlags = 0x10
	NexthopUnresolved NexthopFlags = 0x20
	NexthopTrap       NexthopFlags = 0x40
)

var nexthopFlagNames = flagNames{0x1: "dead", 0x2: "pervasive", 0x4: "onlink", 0x8: "offload",
	0x10: "linkdown", 0x20: "unresolved", 0x40: "trap"}

func (f NexthopFlags) MarshalJSON() ([]byte, error) { return nexthopFlagNames.marshal(uint32(f)) }
func (f *NexthopFlags) UnmarshalJSON(b []byte) error {
	v, err := nexthopFlagNames.unmarshal(b)
	*f = NexthopFlags(v)
	return err
}

// AddrFlags are IFA_F_* bits.
type AddrFlags uint32

const (
	AddrSecondary     AddrFlags = 0x01 // IPv6: temporary
	AddrNoDAD         AddrFlags = 0x02
	AddrOptimistic    AddrFlags = 0x04
	AddrDADFailed     AddrFlags = 0x08
	AddrHomeAddress   AddrFlags = 0x10
	AddrDeprecated    AddrFlags = 0x20
	AddrTentative     AddrFlags = 0x40
	AddrPermanent     AddrFlags = 0x80
	AddrManageTemp    AddrFlags = 0x100
	AddrNoPrefixRoute AddrFlags = 0x200
	AddrMcAutoJoin    AddrFlags = 0x400
	AddrStablePrivacy AddrFlags = 0x800
)

var addrFlagNames = flagNames{0x01: "secondary", 0x02: "nodad", 0x04: "optimistic", 0x08: "dadfailed",
	0x10: "homeaddress", 0x20: "deprecated", 0x40: "tentative", 0x80: "permanent",
	0x100: "mngtmpaddr", 0x200: "noprefixroute", 0x400: "autojoin", 0x800: "stable-privacy"}

func (f AddrFlags) MarshalJSON() ([]byte, error) { return addrFlagNames.marshal(uint32(f)) }
func (f *AddrFlags) UnmarshalJSON(b []byte) error {
	v, err := addrFlagNames.unmarshal(b)
	*f = AddrFlags(v)
	return err
}
