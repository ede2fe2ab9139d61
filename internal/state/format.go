package state

import (
	"fmt"
	"strconv"
	"strings"
)

// TableName renders a table number the way iproute2 does for the
// reserved ones.
func TableName(t uint32) string {
	switch t {
	case TableMain:
		return "main"
	case TableLocal:
		return "local"
	case TableDefault:
		return "default"
	}
	return strconv.FormatUint(uint64(t), 10)
}

// ParseTable reads a table as TableName writes it: a reserved table's
// name or a number.
func ParseTable(s string) (uint32, error) {
	for _, t := range []uint32{TableMain, TableLocal, TableDefault} {
		if s == TableName(t) {
			return t, nil
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

// String renders the link like `ip link` would describe it.
func (l *Link) String() string {
	var b strings.Builder
	b.WriteString(l.Name)
	if l.Kind != "" {
		b.WriteString(" type " + l.Kind)
	}
	if l.Peer != "" {
		b.WriteString(" peer " + l.Peer)
		if l.PeerNamespace != "" {
			b.WriteString(" netns " + l.PeerNamespace)
		}
	}
	if d := l.DeviceString(); d != "" {
		b.WriteString(" " + d)
	}
	if l.Up {
		b.WriteString(" up")
	}
	return b.String()
}

// String renders the address in `ip addr add` words.
func (a *Addr) String() string {
	var b strings.Builder
	b.WriteString(a.Prefix.String())
	if a.Peer.IsValid() {
		b.WriteString(" peer " + a.Peer.String())
	}
	b.WriteString(" dev " + a.Dev)
	if a.Scope != ScopeUniverse {
		b.WriteString(" scope " + a.Scope.String())
	}
	if a.Flags&AddrNoPrefixRoute != 0 {
		b.WriteString(" noprefixroute")
	}
	if a.Flags&AddrNoDAD != 0 {
		b.WriteString(" nodad")
	}
	return b.String()
}

// String renders the route in `ip route add` words.
func (r *Route) String() string {
	var b strings.Builder
	if r.Type != RouteUnicast {
		b.WriteString(r.Type.String() + " ")
	}
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
		if r.Is6() {
			b.WriteString(" (::/0)")
		}
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Src.IsValid() && r.Src.Bits() != 0 {
		b.WriteString(" from " + r.Src.String())
	}
	if r.TOS != 0 {
		fmt.Fprintf(&b, " tos 0x%x", r.TOS)
	}
	if len(r.Nexthops) == 1 {
		writeNexthop(&b, &r.Nexthops[0], r.Is6())
	} else {
		for i := range r.Nexthops {
			b.WriteString(" nexthop")
			writeNexthop(&b, &r.Nexthops[i], r.Is6())
			if w := r.Nexthops[i].Weight; w > 1 {
				fmt.Fprintf(&b, " weight %d", w)
			}
		}
	}
	b.WriteString(" table " + TableName(r.Table))
	if r.Protocol != Proto && r.Protocol != 0 {
		b.WriteString(" proto " + r.Protocol.String())
	}
	if r.Scope != ScopeUniverse {
		b.WriteString(" scope " + r.Scope.String())
	}
	if r.PrefSrc.IsValid() {
		b.WriteString(" src " + r.PrefSrc.String())
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	if r.Flags&NexthopOnlink != 0 && len(r.Nexthops) <= 1 {
		b.WriteString(" onlink")
	}
	return b.String()
}

func writeNexthop(b *strings.Builder, nh *Nexthop, v6 bool) {
	if nh.Gateway.IsValid() {
		if v6 != nh.Gateway.Is6() {
			b.WriteString(" via inet6 " + nh.Gateway.String())
		} else {
			b.WriteString(" via " + nh.Gateway.String())
		}
	}
	if nh.Dev != "" {
		b.WriteString(" dev " + nh.Dev)
	}
	if nh.Flags&NexthopOnlink != 0 {
		b.WriteString(" onlink")
	}
}

// String renders the rule in `ip rule add` words.
func (r *Rule) String() string {
	var b strings.Builder
	if r.Family == 6 {
		b.WriteString("-6 ")
	}
	fmt.Fprintf(&b, "pref %d", r.Priority)
	if r.Invert {
		b.WriteString(" not")
	}
	if r.Src.IsValid() {
		b.WriteString(" from " + r.Src.String())
	} else {
		b.WriteString(" from all")
	}
	if r.Dst.IsValid() {
		b.WriteString(" to " + r.Dst.String())
	}
	r.WriteTOSMark(&b)
	if r.IIF != "" {
		b.WriteString(" iif " + r.IIF)
	}
	if r.OIF != "" {
		b.WriteString(" oif " + r.OIF)
	}
	if r.UID != nil {
		fmt.Fprintf(&b, " uidrange %d-%d", r.UID.Start, r.UID.End)
	}
	if r.IPProto != 0 {
		fmt.Fprintf(&b, " ipproto %d", r.IPProto)
	}
	WritePorts(&b, "sport", r.SPort)
	WritePorts(&b, "dport", r.DPort)
	if r.L3MDev {
		b.WriteString(" l3mdev")
	}
	switch r.Action {
	case ActionLookup:
		if !r.L3MDev {
			b.WriteString(" lookup " + TableName(r.Table))
		}
	case ActionGoto:
		fmt.Fprintf(&b, " goto %d", r.Goto)
	default:
		b.WriteString(" " + r.Action.String())
	}
	if r.SuppressPrefixLen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixLen)
	}
	if r.SuppressIfGroup >= 0 {
		fmt.Fprintf(&b, " suppress_ifgroup %d", r.SuppressIfGroup)
	}
	if r.Protocol != Proto && r.Protocol != 0 {
		b.WriteString(" proto " + r.Protocol.String())
	}
	return b.String()
}

// WriteTOSMark writes the rule's TOS and fwmark selectors as both `ip rule
// add` and `ip rule list` put them (" tos 0x10 fwmark 0x1/0xff").
func (r *Rule) WriteTOSMark(b *strings.Builder) {
	if r.TOS != 0 {
		fmt.Fprintf(b, " tos 0x%x", r.TOS)
	}
	if r.Mark != 0 || r.Mask != 0 {
		fmt.Fprintf(b, " fwmark 0x%x", r.Mark)
		if r.Mask != 0xffffffff {
			fmt.Fprintf(b, "/0x%x", r.Mask)
		}
	}
}

// WritePorts writes a port selector in iproute2's words (" sport 53",
// " dport 1000-2000"); nil writes nothing.
func WritePorts(b *strings.Builder, word string, p *PortRange) {
	if p == nil {
		return
	}
	if p.Start == p.End {
		fmt.Fprintf(b, " %s %d", word, p.Start)
	} else {
		fmt.Fprintf(b, " %s %d-%d", word, p.Start, p.End)
	}
}

// Summary describes a route set in one line: how many routes, and the
// first of them.
func (s *RouteSet) Summary() string {
	if len(s.Dsts) == 0 {
		return "0 routes"
	}
	first := s.Route(s.Dsts[0])
	if len(s.Dsts) == 1 {
		return first.String()
	}
	return fmt.Sprintf("%d routes like %s", len(s.Dsts), first.String())
}
