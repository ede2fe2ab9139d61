package state

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// String renders the rule in nft's words, e.g.
// `oifname != { "lo", "wg0" } meta l4proto udp udp dport 53 counter drop`.
func (r *FwRule) String() string {
	var w []string
	add := func(s ...string) { w = append(w, s...) }
	switch r.Family {
	case 4:
		add("meta nfproto ipv4")
	case 6:
		add("meta nfproto ipv6")
	}
	if len(r.IIF) > 0 {
		add("iifname " + strSet(r.IIF))
	}
	if len(r.OIF) > 0 {
		add("oifname " + strSet(r.OIF))
	}
	if len(r.NotOIF) > 0 {
		add("oifname != " + strSet(r.NotOIF))
	}
	if len(r.NotIIF) > 0 {
		add("iifname != " + strSet(r.NotIIF))
	}
	ip := "ip"
	if r.Family == 6 {
		ip = "ip6"
	}
	if len(r.Saddr) > 0 {
		add(ip + " saddr " + prefixSet(r.Saddr))
	}
	if len(r.Daddr) > 0 {
		add(ip + " daddr " + prefixSet(r.Daddr))
	}
	if len(r.NotDaddr) > 0 {
		add(ip + " daddr != " + prefixSet(r.NotDaddr))
	}
	if r.Proto != 0 {
		add("meta l4proto " + ProtoName4(r.Proto))
	}
	if len(r.SPorts) > 0 {
		add("th sport " + portSet(r.SPorts))
	}
	if len(r.DPorts) > 0 {
		add("th dport " + portSet(r.DPorts))
	}
	if len(r.ICMPv6Types) > 0 {
		var ts []string
		for _, t := range r.ICMPv6Types {
			ts = append(ts, strconv.Itoa(int(t)))
		}
		add("icmpv6 type { " + strings.Join(ts, ", ") + " }")
	}
	if r.UID != nil {
		if r.UID.Start == r.UID.End {
			add(fmt.Sprintf("meta skuid %d", r.UID.Start))
		} else {
			add(fmt.Sprintf("meta skuid %d-%d", r.UID.Start, r.UID.End))
		}
	}
	if r.Cgroup != "" {
		add(fmt.Sprintf("socket cgroupv2 level %d %q", CgroupLevel(r.Cgroup), r.Cgroup))
	}
	if r.MarkMask != 0 {
		add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", r.MarkMask, r.Mark))
	}
	if len(r.CtState) > 0 {
		add("ct state { " + strings.Join(r.CtState, ", ") + " }")
	}
	if r.HopLimit != 0 {
		add(fmt.Sprintf("ip6 hoplimit %d", r.HopLimit))
	}
	if r.SaddrLocalOIF {
		add("fib saddr . oif type local")
	}
	if r.IPOptions {
		add("ip hdrlength != 5")
	}
	if r.RoutingHeader {
		add("exthdr rt exists")
	}
	if r.Forwarded {
		add("meta iif != 0")
	}
	if r.Counter {
		add("counter")
		if r.Packets != 0 || r.Bytes != 0 {
			add(fmt.Sprintf("packets %d bytes %d", r.Packets, r.Bytes))
		}
	}
	if r.SetMarkMask != 0 {
		add(fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", ^r.SetMarkMask, r.SetMark))
	}
	if r.Masquerade {
		add("masquerade")
	}
	if r.DNATPrefix.IsValid() {
		add("dnat " + ipWord(r.DNATPrefix) + " prefix to " + r.DNATPrefix.String())
	}
	if r.SNATPrefix.IsValid() {
		add("snat " + ipWord(r.SNATPrefix) + " prefix to " + r.SNATPrefix.String())
	}
	if r.Verdict != "" {
		add(r.Verdict)
	}
	if r.Comment != "" {
		add(strconv.Quote(r.Comment))
	}
	return strings.Join(w, " ")
}

// String renders the chain header in nft's words.
func (c *Chain) String() string {
	return fmt.Sprintf("chain %s { type %s hook %s priority %d; policy %s; }", c.Name, c.Type, c.Hook, c.Priority, c.Policy)
}

// CgroupLevel is the depth of a cgroup v2 path ("a.slice/b.service" is 2),
// which nftables' socket cgroupv2 match needs.
func CgroupLevel(path string) int {
	path = strings.Trim(path, "/")
	if path == "" {
		return 0
	}
	return strings.Count(path, "/") + 1
}

// ProtoName4 names common layer 4 protocols the way nft does.
func ProtoName4(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

func strSet(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "{ " + strings.Join(q, ", ") + " }"
}

func prefixSet(ps []netip.Prefix) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			q[i] = p.Addr().String()
		} else {
			q[i] = p.String()
		}
	}
	if len(q) == 1 {
		return q[0]
	}
	return "{ " + strings.Join(q, ", ") + " }"
}

func portSet(ps []PortRange) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		if p.Start == p.End {
			q[i] = strconv.Itoa(int(p.Start))
		} else {
			q[i] = fmt.Sprintf("%d-%d", p.Start, p.End)
		}
	}
	if len(q) == 1 {
		return q[0]
	}
	return "{ " + strings.Join(q, ", ") + " }"
}

// Summary describes the table in one line: its chains and rule counts.
func (f *Firewall) Summary() string {
	parts := make([]string, len(f.Chains))
	for i, c := range f.Chains {
		parts[i] = fmt.Sprintf("%s (%d rules)", c.Name, len(c.Rules))
	}
	return "table inet " + FirewallTable + ": " + strings.Join(parts, ", ")
}

// Lines renders the whole table as nft would list it.
func (f *Firewall) Lines() []string {
	out := []string{"table inet " + FirewallTable + " {"}
	for i := range f.Chains {
		c := &f.Chains[i]
		out = append(out, fmt.Sprintf("  chain %s {", c.Name),
			fmt.Sprintf("    type %s hook %s priority %d; policy %s;", c.Type, c.Hook, c.Priority, c.Policy))
		for j := range c.Rules {
			out = append(out, "    "+c.Rules[j].String())
		}
		out = append(out, "  }")
	}
	return append(out, "}")
}

func ipWord(p netip.Prefix) string {
	if p.Addr().Is6() {
		return "ip6"
	}
	return "ip"
}
