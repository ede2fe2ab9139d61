package verify

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/nfteval"
	"github.com/tunroute/tunroute/internal/state"
)

// Match is a set of packets given by selectors, all of which must hold
// (an empty field holds for any packet). Rules, firewall rules, built-in
// properties and assertions are all Matches: the packet space is cut so
// that each of them holds for the whole of a class or for none of it.
type Match struct {
	// Family 4 or 6 restricts to one; 0 is both.
	Family int
	Src    []netip.Prefix
	Dst    []netip.Prefix
	// NotDst: the packet's destination is in none of these (handled like Dst).
	NotDst []netip.Prefix
	Protos []uint8
	SPorts []state.PortRange
	DPorts []state.PortRange
	ICMP   []uint8
	UID    *state.UIDRange
	// MarkMask != 0: (mark & MarkMask) == Mark.
	Mark, MarkMask uint32
	Cgroup         string
	// IIF: forwarded packets that came in on one of these; "lo" stands
	// for the traffic this host generates.
	IIF []string
	// NotIIF: packets that came in on none of these (same convention).
	NotIIF []string
	// Local and Forwarded restrict to one kind of traffic.
	Local, Forwarded bool
}

// Contains reports whether p is in the set.
func (m *Match) Contains(p *Packet) bool {
	if m.Family != 0 && m.Family != p.Family {
		return false
	}
	if m.Local && p.Forwarded() || m.Forwarded && !p.Forwarded() {
		return false
	}
	if len(m.Src) > 0 && (!p.Src.IsValid() || !state.AddrIn(m.Src, p.Src)) {
		return false
	}
	if len(m.Dst) > 0 && !state.AddrIn(m.Dst, p.Dst) {
		return false
	}
	if len(m.NotDst) > 0 && state.AddrIn(m.NotDst, p.Dst) {
		return false
	}
	if len(m.Protos) > 0 && !contains(m.Protos, p.Proto) {
		return false
	}
	if len(m.SPorts) > 0 && (!hasPorts(p.Proto) || !state.PortIn(m.SPorts, p.SPort)) {
		return false
	}
	if len(m.DPorts) > 0 && (!hasPorts(p.Proto) || !state.PortIn(m.DPorts, p.DPort)) {
		return false
	}
	if len(m.ICMP) > 0 && !contains(m.ICMP, p.ICMPType) {
		return false
	}
	if m.UID != nil && (p.Forwarded() || p.UID < m.UID.Start || p.UID > m.UID.End) {
		return false
	}
	if m.MarkMask != 0 && p.Mark&m.MarkMask != m.Mark {
		return false
	}
	if m.Cgroup != "" && (p.Forwarded() || !nfteval.CgroupMatches(m.Cgroup, p.Cgroup)) {
		return false
	}
	if len(m.IIF) > 0 {
		iif := p.IIF
		if iif == "" {
			iif = "lo"
		}
		if !contains(m.IIF, iif) {
			return false
		}
	}
	if len(m.NotIIF) > 0 {
		iif := p.IIF
		if iif == "" {
			iif = "lo"
		}
		if contains(m.NotIIF, iif) {
			return false
		}
	}
	return true
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// ofFamily keeps the prefixes of one family; ok is false when some were
// given but none is of that family (the Match then holds for nothing).
func ofFamily(ps []netip.Prefix, fam int) ([]netip.Prefix, bool) {
	if len(ps) == 0 {
		return nil, true
	}
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == (fam == 4) {
			out = append(out, p)
		}
	}
	return out, len(out) > 0
}

// setProtoPorts sets the protocol and the source and destination port
// ranges of m from a rule's or a selector's one of each (0, nil: any).
func (m *Match) setProtoPorts(proto uint8, sport, dport *state.PortRange) {
	if proto != 0 {
		m.Protos = []uint8{proto}
	}
	if sport != nil {
		m.SPorts = []state.PortRange{*sport}
	}
	if dport != nil {
		m.DPorts = []state.PortRange{*dport}
	}
}

// ruleMatch is the packet set a policy rule's selectors pick.
func ruleMatch(r *state.Rule) Match {
	m := Match{Family: r.Family}
	if r.Src.IsValid() && r.Src.Bits() > 0 {
		m.Src = []netip.Prefix{r.Src}
	}
	if r.Dst.IsValid() && r.Dst.Bits() > 0 {
		m.Dst = []netip.Prefix{r.Dst}
	}
	m.setProtoPorts(r.IPProto, r.SPort, r.DPort)
	m.UID = r.UID
	if r.Mark != 0 || r.Mask != 0 {
		m.Mark, m.MarkMask = r.Mark, r.Mask
		if m.MarkMask == 0 {
			m.MarkMask = 0xffffffff
		}
		m.Mark &= m.MarkMask
	}
	if r.IIF != "" {
		m.IIF = []string{r.IIF}
	}
	return m
}

// fwMatch is the packet set a firewall rule matches (its output device
// aside: the outgoing device and the chosen source are the same for a
// whole class, being decided by its route; a source on the output
// device is then told apart by the cuts at each of the host's
// addresses). The header fields check's packets do not vary are left
// out too: see hostShape.
func fwMatch(r *state.FwRule) Match {
	m := Match{Family: r.Family, Src: r.Saddr, Dst: r.Daddr, NotDst: r.NotDaddr, SPorts: r.SPorts,
		DPorts: r.DPorts, ICMP: r.ICMPv6Types, UID: r.UID, Cgroup: r.Cgroup, IIF: r.IIF, NotIIF: r.NotIIF,
		Forwarded: r.Forwarded}
	if r.Proto != 0 {
		m.Protos = []uint8{r.Proto}
	}
	if r.MarkMask != 0 {
		m.Mark, m.MarkMask = r.Mark&r.MarkMask, r.MarkMask
	}
	return m
}
