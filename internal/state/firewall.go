package state

import "net/netip"

// FirewallTable is the name of tunroute's own nftables table (family
// inet). tunroute replaces it as a whole, in one transaction, and never
// reads or changes any other table.
const FirewallTable = "tunroute"

// Firewall is the content of tunroute's nftables table: the kill switch
// (the security policy: what may leave a non-tunnel interface in clear)
// and the marks that send selected traffic to an identity. A nil
// *Firewall means the table does not exist.
type Firewall struct {
	Chains []Chain `json:"chains"`
}

// Chain is a base chain of tunroute's table.
type Chain struct {
	Name string `json:"name"`
	// Type is "filter", "route" or "nat".
	Type string `json:"type"`
	// Hook is "prerouting", "input", "forward", "output" or "postrouting".
	Hook     string `json:"hook"`
	Priority int    `json:"priority"`
	// Policy is "accept" or "drop".
	Policy string   `json:"policy"`
	Rules  []FwRule `json:"rules"`
}

// FwRule is one nftables rule in the small language tunroute needs. All
// matches given must hold (zero values match anything); then the
// statements run in order: counter, set mark, verdict or NAT.
type FwRule struct {
	// Comment says why the rule exists; `nft list ruleset` shows it.
	Comment string `json:"comment,omitempty"`

	// Family restricts to IPv4 (4) or IPv6 (6); 0 matches both.
	Family int `json:"family,omitempty"`
	// IIF/OIF match interface names (iifname/oifname in a set);
	// NotOIF matches packets leaving by any other interface.
	IIF    []string `json:"iif,omitempty"`
	OIF    []string `json:"oif,omitempty"`
	NotOIF []string `json:"not_oif,omitempty"`
	// NotIIF matches packets that came in by any other interface.
	NotIIF []string `json:"not_iif,omitempty"`
	// Proto is the layer 4 protocol (meta l4proto), 0 any.
	Proto  uint8       `json:"proto,omitempty"`
	SPorts []PortRange `json:"sports,omitempty"`
	DPorts []PortRange `json:"dports,omitempty"`
	// Saddr/Daddr match if the address is in any of the prefixes (all of
	// one family, the rule's Family).
	Saddr    []netip.Prefix `json:"saddr,omitempty"`
	Daddr    []netip.Prefix `json:"daddr,omitempty"`
	NotDaddr []netip.Prefix `json:"not_daddr,omitempty"`
	// UID matches the sending socket's owner (meta skuid).
	UID *UIDRange `json:"uid,omitempty"`
	// Cgroup matches the sending socket's cgroup v2 path (relative to
	// the cgroup root, e.g. "system.slice/foo.service") and its ancestors
	// at that level; CgroupID is the path's inode, resolved at apply time.
	Cgroup   string `json:"cgroup,omitempty"`
	CgroupID uint64 `json:"cgroup_id,omitempty"`
	// MarkMask != 0: match (meta mark & MarkMask) == Mark.
	Mark     uint32 `json:"mark,omitempty"`
	MarkMask uint32 `json:"mark_mask,omitempty"`
	// ICMPv6Types matches ICMPv6 messages of these types.
	ICMPv6Types []uint8 `json:"icmpv6_types,omitempty"`
	// CtState matches connection tracking states ("established", "related").
	CtState []string `json:"ct_state,omitempty"`
	// HopLimit != 0 matches IPv6 packets with this hop limit (ip6
	// hoplimit): neighbour discovery is sent with 255, MLD with 1.
	HopLimit uint8 `json:"hop_limit,omitempty"`
	// SaddrLocalOIF matches packets whose source address is one of the
	// outgoing device's own addresses, looked up when the packet passes
	// (fib saddr . oif type local; output, forward and postrouting).
	SaddrLocalOIF bool `json:"saddr_local_oif,omitempty"`
	// IPOptions matches IPv4 packets that carry options (ip hdrlength
	// != 5): source routes, record route, timestamps, router alert.
	IPOptions bool `json:"ip_options,omitempty"`
	// RoutingHeader matches IPv6 packets with a routing extension header
	// (exthdr rt exists): source routes, segment routing.
	RoutingHeader bool `json:"routing_header,omitempty"`
	// Forwarded matches packets the host did not originate: in
	// postrouting, a forwarded packet has an input device and one the
	// host sends has none (meta iif != 0).
	Forwarded bool `json:"forwarded,omitempty"`

	// Counter counts the packets and bytes the rule sees (matches).
	Counter bool `json:"counter,omitempty"`
	// SetMarkMask != 0: meta mark set (meta mark & ^SetMarkMask) | SetMark.
	SetMark     uint32 `json:"set_mark,omitempty"`
	SetMarkMask uint32 `json:"set_mark_mask,omitempty"`
	// Verdict is "accept", "drop", "reject" or "" (go on).
	Verdict string `json:"verdict,omitempty"`
	// Masquerade rewrites the source to the outgoing interface's address
	// (nat chains only).
	Masquerade bool `json:"masquerade,omitempty"`
	// DNATPrefix / SNATPrefix map the destination / source address into
	// this prefix keeping its host bits: 1:1 NAT between two ranges of the
	// same size (nat chains only: prerouting for DNAT, postrouting for SNAT).
	DNATPrefix netip.Prefix `json:"dnat_prefix,omitzero"`
	SNATPrefix netip.Prefix `json:"snat_prefix,omitzero"`

	// Packets and Bytes are the counter's values when observed.
	Packets uint64 `json:"packets,omitempty"`
	Bytes   uint64 `json:"bytes,omitempty"`
}

// Equal reports whether two firewalls have the same chains and rules
// (counter values are not compared).
func (f *Firewall) Equal(o *Firewall) bool {
	if f == nil || o == nil {
		return f == o
	}
	if len(f.Chains) != len(o.Chains) {
		return false
	}
	for i := range f.Chains {
		a, b := &f.Chains[i], &o.Chains[i]
		if a.Name != b.Name || a.Type != b.Type || a.Hook != b.Hook || a.Priority != b.Priority ||
			a.Policy != b.Policy || len(a.Rules) != len(b.Rules) {
			return false
		}
		for j := range a.Rules {
			if !a.Rules[j].sameAs(&b.Rules[j]) {
				return false
			}
		}
	}
	return true
}

func (r *FwRule) sameAs(o *FwRule) bool {
	x, y := *r, *o
	x.Packets, x.Bytes, y.Packets, y.Bytes = 0, 0, 0, 0
	return fwRuleKey(&x) == fwRuleKey(&y)
}

// fwRuleKey renders a rule canonically for comparison.
func fwRuleKey(r *FwRule) string { return r.String() }
