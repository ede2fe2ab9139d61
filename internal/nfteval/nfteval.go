// Package nfteval runs one concrete packet through tunroute's own nftables
// table (state.Firewall) the way the kernel's nf_tables would: the base
// chains of a hook in priority order, the rules of a chain in order, the
// first verdict ending the chain. It is the firewall half of explaining
// and proving a packet's fate; internal/fib is the routing half.
//
// It models exactly the small language of state.FwRule. A packet is taken
// to open a new connection: `ct state established,related` never matches
// (a reply's fate depends on the connection it answers, not on its header).
package nfteval

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// Packet is what the firewall can see of one packet at one hook.
type Packet struct {
	Family   int // 4 or 6
	IIF, OIF string
	Src, Dst netip.Addr
	Proto    uint8
	SPort    uint16
	DPort    uint16
	ICMPType uint8
	// Socket is set for locally generated packets: only they have an
	// owner (UID) and a cgroup.
	Socket bool
	UID    uint32
	Cgroup string
	Mark   uint32
	// HopLimit is an IPv6 packet's hop limit (ip6 hoplimit).
	HopLimit uint8
	// SrcOnOIF: Src is one of OIF's own addresses (what `fib saddr . oif
	// type local` finds); the caller knows the devices' addresses.
	SrcOnOIF bool
	// IPOptions: an IPv4 header longer than 20 bytes (ip hdrlength != 5).
	IPOptions bool
	// RoutingHeader: an IPv6 routing extension header (exthdr rt exists).
	RoutingHeader bool
}

// Forwarded reports whether the packet came in by a device: `meta iif`
// is then not 0 (a packet this host sends has no input device; in
// prerouting, one it sends to itself came in by lo).
func (p *Packet) Forwarded() bool { return p.IIF != "" }

// Verdict of a hook for one packet.
type Verdict struct {
	// Drop is set when a rule dropped or rejected the packet.
	Drop bool
	// Chain and Rule name the rule that gave the final verdict (Rule is
	// nil when the packet went through every chain to their policies).
	Chain string
	Rule  *state.FwRule
	// Accepted lists, per chain, the rule that accepted the packet.
	Accepted []Hit
	// Mark is the packet's mark after the hook's mark statements.
	Mark uint32
	// Masquerade, SNAT and DNAT report NAT rules that matched.
	Masquerade bool
	SNAT, DNAT netip.Prefix
}

// Hit is one rule that gave a verdict.
type Hit struct {
	Chain string
	Rule  *state.FwRule
}

// Reason is the comment of the rule that decided, for reports.
func (v *Verdict) Reason() string {
	if v.Rule == nil {
		return "policy"
	}
	if v.Rule.Comment != "" {
		return v.Rule.Comment
	}
	return v.Rule.String()
}

// Chains returns the base chains of hook whose type is one of types (all
// types when empty), in the order the kernel runs them (priority, then
// the order they were added in).
func Chains(fw *state.Firewall, hook string, types ...string) []*state.Chain {
	if fw == nil {
		return nil
	}
	var out []*state.Chain
	for i := range fw.Chains {
		c := &fw.Chains[i]
		if c.Hook == hook && (len(types) == 0 || slices.Contains(types, c.Type)) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b *state.Chain) int { return a.Priority - b.Priority })
	return out
}

// Hook runs p through every base chain of hook (of the given types, all
// when empty). An accept ends a chain, not the hook: the next base chain
// still sees the packet; a drop or reject ends everything.
func Hook(fw *state.Firewall, hook string, p Packet, types ...string) Verdict {
	v := Verdict{Mark: p.Mark}
	for _, c := range Chains(fw, hook, types...) {
		if stop := runChain(c, &p, &v); stop {
			return v
		}
	}
	return v
}

func runChain(c *state.Chain, p *Packet, v *Verdict) bool {
	for i := range c.Rules {
		r := &c.Rules[i]
		if !Matches(r, p) {
			continue
		}
		if r.SetMarkMask != 0 {
			p.Mark = p.Mark&^r.SetMarkMask | r.SetMark
			v.Mark = p.Mark
		}
		if r.Masquerade {
			v.Masquerade = true
		}
		if r.SNATPrefix.IsValid() {
			v.SNAT = r.SNATPrefix
		}
		if r.DNATPrefix.IsValid() {
			v.DNAT = r.DNATPrefix
		}
		switch r.Verdict {
		case "accept":
			v.Accepted = append(v.Accepted, Hit{Chain: c.Name, Rule: r})
			return false
		case "drop", "reject":
			v.Drop, v.Chain, v.Rule = true, c.Name, r
			return true
		}
		if r.Masquerade || r.SNATPrefix.IsValid() || r.DNATPrefix.IsValid() {
			return false // a NAT statement is terminal in its chain
		}
	}
	if c.Policy == "drop" {
		v.Drop, v.Chain, v.Rule = true, c.Name, nil
		return true
	}
	return false
}

// Matches reports whether every match of r holds for p.
func Matches(r *state.FwRule, p *Packet) bool {
	if r.Family != 0 && r.Family != p.Family {
		return false
	}
	if len(r.IIF) > 0 && !slices.Contains(r.IIF, p.IIF) {
		return false
	}
	if len(r.OIF) > 0 && !slices.Contains(r.OIF, p.OIF) {
		return false
	}
	if len(r.NotOIF) > 0 && slices.Contains(r.NotOIF, p.OIF) {
		return false
	}
	// iifname of a packet without an input device is "": not in any set.
	if len(r.NotIIF) > 0 && slices.Contains(r.NotIIF, p.IIF) {
		return false
	}
	if r.Proto != 0 && r.Proto != p.Proto {
		return false
	}
	if len(r.SPorts) > 0 || len(r.DPorts) > 0 {
		if !hasPorts(p.Proto) || !inPorts(r.SPorts, p.SPort) || !inPorts(r.DPorts, p.DPort) {
			return false
		}
	}
	if len(r.Saddr) > 0 && !state.AddrIn(r.Saddr, p.Src) {
		return false
	}
	if len(r.Daddr) > 0 && !state.AddrIn(r.Daddr, p.Dst) {
		return false
	}
	if len(r.NotDaddr) > 0 && state.AddrIn(r.NotDaddr, p.Dst) {
		return false
	}
	if r.UID != nil && (!p.Socket || p.UID < r.UID.Start || p.UID > r.UID.End) {
		return false
	}
	if r.Cgroup != "" && (!p.Socket || !CgroupMatches(r.Cgroup, p.Cgroup)) {
		return false
	}
	if r.MarkMask != 0 && p.Mark&r.MarkMask != r.Mark {
		return false
	}
	if len(r.ICMPv6Types) > 0 && (p.Family != 6 || p.Proto != 58 || !slices.Contains(r.ICMPv6Types, p.ICMPType)) {
		return false
	}
	if len(r.CtState) > 0 && !slices.Contains(r.CtState, "new") {
		return false
	}
	return matchesShape(r, p)
}

// matchesShape: the header fields the kill switch looks at for what is
// link-local by nature and for what asks routers to route it elsewhere.
// Each needs its family (internal/kernel refuses the rule otherwise).
func matchesShape(r *state.FwRule, p *Packet) bool {
	if r.HopLimit != 0 && (p.Family != 6 || p.HopLimit != r.HopLimit) {
		return false
	}
	if r.SaddrLocalOIF && (p.OIF == "" || !p.SrcOnOIF) {
		return false
	}
	if r.IPOptions && (p.Family != 4 || !p.IPOptions) {
		return false
	}
	if r.RoutingHeader && (p.Family != 6 || !p.RoutingHeader) {
		return false
	}
	if r.Forwarded && !p.Forwarded() {
		return false
	}
	return true
}

// Handled lists the fields of state.FwRule this package evaluates: the
// matches in Matches, the statements in runChain, and what describes a
// rule without changing its verdict. A test fails when FwRule gains a
// field that is not here, so a new match is never silently ignored.
var Handled = []string{
	// descriptions and observations
	"Comment", "Packets", "Bytes", "Counter",
	// the kernel matches the cgroup by its inode, resolved from Cgroup
	// at apply time: the path is the same match
	"CgroupID",
	// matches
	"Family", "IIF", "OIF", "NotOIF", "NotIIF", "Proto", "SPorts", "DPorts", "Saddr", "Daddr", "NotDaddr",
	"UID", "Cgroup", "Mark", "MarkMask", "ICMPv6Types", "CtState", "HopLimit", "SaddrLocalOIF",
	"IPOptions", "RoutingHeader", "Forwarded",
	// statements
	"SetMark", "SetMarkMask", "Verdict", "Masquerade", "DNATPrefix", "SNATPrefix",
}

// CgroupMatches is `socket cgroupv2 level N "PATH"`: the socket's cgroup
// or its ancestor at PATH's level is PATH.
func CgroupMatches(rule, cgroup string) bool {
	rule, cgroup = strings.Trim(rule, "/"), strings.Trim(cgroup, "/")
	if cgroup == "" || rule == "" {
		return false
	}
	return cgroup == rule || strings.HasPrefix(cgroup, rule+"/")
}

// hasPorts: the protocols whose header starts with ports (th sport/dport).
func hasPorts(proto uint8) bool {
	return proto == 6 || proto == 17 || proto == 132 || proto == 33 || proto == 136
}

// inPorts: no ranges match every port.
func inPorts(ps []state.PortRange, p uint16) bool { return len(ps) == 0 || state.PortIn(ps, p) }
