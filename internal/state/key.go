package state

import "net/netip"

// RouteKey is the kernel's identity of a route: two routes with the same
// key cannot coexist (adding the second fails with EEXIST), and a replace
// or delete addresses a route by it. IPv4 keys on (table, dst, tos,
// metric); IPv6 on (table, dst, src, metric).
type RouteKey struct {
	Table  uint32
	Dst    netip.Prefix
	Src    netip.Prefix
	TOS    uint8
	Metric uint32
}

// Key returns the route's kernel identity.
func (r *Route) Key() RouteKey {
	return RouteKey{Table: r.Table, Dst: r.Dst, Src: r.Src, TOS: r.TOS, Metric: r.Metric}
}

// AddrKey is the kernel's identity of an address on a device.
type AddrKey struct {
	Dev    string
	Prefix netip.Prefix
	Peer   netip.Prefix
}

// Key returns the address's identity.
func (a *Addr) Key() AddrKey { return AddrKey{Dev: a.Dev, Prefix: a.Prefix, Peer: a.Peer} }

// RuleKey is everything the kernel compares when it deletes a rule: rules
// have no identity beyond their full content.
type RuleKey struct {
	Family             int
	Priority           uint32
	Invert             bool
	Src, Dst           netip.Prefix
	IIF, OIF           string
	Mark, Mask         uint32
	TOS, IPProto       uint8
	SPort, DPort       PortRange
	HasSPort, HasDPort bool
	UID                UIDRange
	HasUID             bool
	L3MDev             bool
	TunID              uint64
	Action             RuleAction
	Table, Goto        uint32
	SuppressPrefixLen  int
	SuppressIfGroup    int
	Realms             uint32
	Protocol           Protocol
}

// Key returns the rule's content as a comparable value.
func (r *Rule) Key() RuleKey {
	k := RuleKey{Family: r.Family, Priority: r.Priority, Invert: r.Invert, Src: r.Src, Dst: r.Dst,
		IIF: r.IIF, OIF: r.OIF, Mark: r.Mark, Mask: r.Mask, TOS: r.TOS, IPProto: r.IPProto,
		L3MDev: r.L3MDev, TunID: r.TunID, Action: r.Action, Table: r.Table, Goto: r.Goto,
		SuppressPrefixLen: r.SuppressPrefixLen, SuppressIfGroup: r.SuppressIfGroup, Realms: r.Realms,
		Protocol: r.Protocol}
	if r.Mark != 0 && r.Mask == 0 {
		k.Mask = 0xffffffff
	}
	if r.SPort != nil {
		k.SPort, k.HasSPort = *r.SPort, true
	}
	if r.DPort != nil {
		k.DPort, k.HasDPort = *r.DPort, true
	}
	if r.UID != nil {
		k.UID, k.HasUID = *r.UID, true
	}
	return k
}
