package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// This file translates a state.FwRule into nf_tables expressions, the way
// nft would for the rule's text (state.FwRule.String): matches in that
// order, then counter, mark, masquerade, verdict. Lists become anonymous
// constant sets; address and port lists are interval sets.

// ruleCode is a rule's expressions and the anonymous sets they look up.
type ruleCode struct {
	exprs []expr.Any
	sets  []*anonSet
}

// anonSet is an anonymous set of one rule. Its Lookup expression names it
// "__set%d" (the kernel picks the number) and id, unique in a transaction.
type anonSet struct {
	id       uint32
	field    string // the FwRule list it holds: its JSON name
	keyType  uint32 // nft's datatype number, so that nft lists it right
	keyLen   uint32
	interval bool
	elems    []setElem
}

type setElem struct {
	key []byte
	end bool // NFT_SET_ELEM_INTERVAL_END: first key after an interval
}

// nft datatypes (nftables' include/datatype.h).
const (
	typeIPv4Addr    = 7
	typeIPv6Addr    = 8
	typeInetService = 13
	typeICMPv6Type  = 29
	typeIfname      = 41
)

// Conntrack states as nft names them, and their bits.
var ctStates = map[string]uint32{
	"invalid":     expr.CtStateBitINVALID,
	"established": expr.CtStateBitESTABLISHED,
	"related":     expr.CtStateBitRELATED,
	"new":         expr.CtStateBitNEW,
	"untracked":   expr.CtStateBitUNTRACKED,
}

// setFields are the FwRule lists (by JSON name) that can be encoded as
// sets, in the order encodeRule looks their sets up. A list is a set when
// it has more than one element.
var setFields = []string{"iif", "oif", "not_oif", "not_iif", "saddr", "daddr", "not_daddr", "sports", "dports", "icmpv6_types"}

// encodeRule translates r. Cgroup matches need r.CgroupID resolved;
// nextSetID numbers the anonymous sets.
func encodeRule(r *state.FwRule, nextSetID func() uint32) (*ruleCode, error) {
	b := &ruleBuilder{next: nextSetID}
	if err := b.rule(r); err != nil {
		return nil, err
	}
	return &b.code, nil
}

type ruleBuilder struct {
	code ruleCode
	next func() uint32
}

func (b *ruleBuilder) add(e ...expr.Any) { b.code.exprs = append(b.code.exprs, e...) }

func (b *ruleBuilder) cmp(op expr.CmpOp, data []byte) {
	b.add(&expr.Cmp{Op: op, Register: 1, Data: data})
}

func (b *ruleBuilder) meta(key expr.MetaKey) { b.add(&expr.Meta{Key: key, Register: 1}) }

// lookup matches register 1 against a new anonymous set.
func (b *ruleBuilder) lookup(s *anonSet, invert bool) {
	s.id = b.next()
	b.code.sets = append(b.code.sets, s)
	b.add(&expr.Lookup{SourceRegister: 1, SetName: "__set%d", SetID: s.id, Invert: invert})
}

func eqOrNeq(invert bool) expr.CmpOp {
	if invert {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func (b *ruleBuilder) rule(r *state.FwRule) error {
	switch r.Family {
	case 0:
	case 4:
		b.meta(expr.MetaKeyNFPROTO)
		b.cmp(expr.CmpOpEq, []byte{unix.NFPROTO_IPV4})
	case 6:
		b.meta(expr.MetaKeyNFPROTO)
		b.cmp(expr.CmpOpEq, []byte{unix.NFPROTO_IPV6})
	default:
		return fmt.Errorf("family %d (want 4, 6 or none)", r.Family)
	}
	if err := b.ifnames(expr.MetaKeyIIFNAME, "iif", r.IIF, false); err != nil {
		return err
	}
	if err := b.ifnames(expr.MetaKeyOIFNAME, "oif", r.OIF, false); err != nil {
		return err
	}
	if err := b.ifnames(expr.MetaKeyOIFNAME, "not_oif", r.NotOIF, true); err != nil {
		return err
	}
	if err := b.ifnames(expr.MetaKeyIIFNAME, "not_iif", r.NotIIF, true); err != nil {
		return err
	}
	for _, a := range []struct {
		field  string
		ps     []netip.Prefix
		dst    bool
		invert bool
	}{{"saddr", r.Saddr, false, false}, {"daddr", r.Daddr, true, false}, {"not_daddr", r.NotDaddr, true, true}} {
		if err := b.addrs(r.Family, a.field, a.ps, a.dst, a.invert); err != nil {
			return err
		}
	}
	if r.Proto != 0 {
		b.meta(expr.MetaKeyL4PROTO)
		b.cmp(expr.CmpOpEq, []byte{r.Proto})
	}
	if err := b.ports("sports", 0, r.SPorts); err != nil {
		return err
	}
	if err := b.ports("dports", 2, r.DPorts); err != nil {
		return err
	}
	if err := b.icmpv6(r); err != nil {
		return err
	}
	if r.UID != nil {
		b.uid(r.UID)
	}
	if r.Cgroup != "" {
		if r.CgroupID == 0 {
			return fmt.Errorf("cgroup %q: id not resolved", r.Cgroup)
		}
		b.add(&expr.Socket{Key: expr.SocketKeyCgroupv2, Level: uint32(state.CgroupLevel(r.Cgroup)), Register: 1})
		b.cmp(expr.CmpOpEq, ne.AppendUint64(nil, r.CgroupID))
	}
	if r.MarkMask != 0 {
		b.meta(expr.MetaKeyMARK)
		b.add(&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: ne.AppendUint32(nil, r.MarkMask), Xor: make([]byte, 4)})
		b.cmp(expr.CmpOpEq, ne.AppendUint32(nil, r.Mark))
	}
	if len(r.CtState) > 0 {
		var bits uint32
		for _, s := range r.CtState {
			bit, ok := ctStates[s]
			if !ok {
				return fmt.Errorf("ct state %q (want invalid, established, related, new or untracked)", s)
			}
			bits |= bit
		}
		b.add(&expr.Ct{Key: expr.CtKeySTATE, Register: 1})
		b.add(&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: ne.AppendUint32(nil, bits), Xor: make([]byte, 4)})
		b.cmp(expr.CmpOpNeq, make([]byte, 4))
	}
	if err := b.packetShape(r); err != nil {
		return err
	}
	if r.Counter {
		// A rule carried back by a rollback keeps its counts.
		b.add(&expr.Counter{Packets: r.Packets, Bytes: r.Bytes})
	}
	if r.SetMarkMask != 0 {
		// mark = (mark & ^mask) | value, as bitwise's and-then-xor.
		b.meta(expr.MetaKeyMARK)
		b.add(&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: ne.AppendUint32(nil, ^r.SetMarkMask&^r.SetMark), Xor: ne.AppendUint32(nil, r.SetMark)})
		b.add(&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	}
	if r.Masquerade {
		b.add(&expr.Masq{})
	}
	for _, n := range []struct {
		p   netip.Prefix
		typ expr.NATType
	}{{r.DNATPrefix, expr.NATTypeDestNAT}, {r.SNATPrefix, expr.NATTypeSourceNAT}} {
		if !n.p.IsValid() {
			continue
		}
		// 1:1 NAT (netmap): the range's first and last address in two
		// registers, and NF_NAT_RANGE_NETMAP keeps the host bits.
		first, last := n.p.Masked().Addr(), lastAddr(n.p)
		fam := uint32(unix.NFPROTO_IPV4)
		if first.Is6() {
			fam = unix.NFPROTO_IPV6
		}
		b.add(&expr.Immediate{Register: 1, Data: first.AsSlice()})
		b.add(&expr.Immediate{Register: 2, Data: last.AsSlice()})
		b.add(&expr.NAT{Type: n.typ, Family: fam, RegAddrMin: 1, RegAddrMax: 2, Prefix: true})
	}
	switch r.Verdict {
	case "":
	case "accept":
		b.add(&expr.Verdict{Kind: expr.VerdictAccept})
	case "drop":
		b.add(&expr.Verdict{Kind: expr.VerdictDrop})
	case "reject":
		// What nft's plain `reject` gives: port unreachable, as ICMP or
		// ICMPv6 when the family is known, else "icmpx".
		switch r.Family {
		case 4:
			b.add(&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3}) // ICMP_PORT_UNREACH
		case 6:
			b.add(&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 4}) // ICMPV6_PORT_UNREACH
		default:
			b.add(&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
		}
	default:
		return fmt.Errorf("verdict %q (want accept, drop, reject or none)", r.Verdict)
	}
	return nil
}

// ifnameKey pads an interface name with NULs to IFNAMSIZ. A trailing "*"
// (allowed for a single name) matches every name with that prefix, as in
// nft: only the prefix is compared.
func ifnameKey(name string, wildcard bool) ([]byte, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q (want 1 to %d bytes)", name, unix.IFNAMSIZ-1)
	}
	if i := strings.IndexByte(name, '*'); i >= 0 {
		if !wildcard || i != len(name)-1 {
			return nil, fmt.Errorf("interface name %q: a wildcard is only allowed at the end of a single name", name)
		}
		return []byte(name[:i]), nil
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("interface name %q contains NUL", name)
	}
	k := make([]byte, unix.IFNAMSIZ)
	copy(k, name)
	return k, nil
}

func (b *ruleBuilder) ifnames(key expr.MetaKey, field string, names []string, invert bool) error {
	if len(names) == 0 {
		return nil
	}
	b.meta(key)
	if len(names) == 1 {
		k, err := ifnameKey(names[0], true)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		b.cmp(eqOrNeq(invert), k)
		return nil
	}
	s := &anonSet{field: field, keyType: typeIfname, keyLen: unix.IFNAMSIZ}
	for _, n := range names {
		k, err := ifnameKey(n, false)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		s.elems = append(s.elems, setElem{key: k})
	}
	s.elems = dedupElems(s.elems)
	b.lookup(s, invert)
	return nil
}

// addrs matches the source or destination address against prefixes of
// the rule's family.
func (b *ruleBuilder) addrs(fam int, field string, ps []netip.Prefix, dst, invert bool) error {
	if len(ps) == 0 {
		return nil
	}
	if fam != 4 && fam != 6 {
		return fmt.Errorf("%s: an address match needs the rule's family (4 or 6)", field)
	}
	for _, p := range ps {
		if !p.IsValid() || p.Addr().Is4() != (fam == 4) || p.Addr().Is4In6() {
			return fmt.Errorf("%s: %s is not an IPv%d prefix", field, p, fam)
		}
	}
	off, n, typ := uint32(12), uint32(4), uint32(typeIPv4Addr) // struct iphdr
	if dst {
		off = 16
	}
	if fam == 6 {
		off, n, typ = 8, 16, typeIPv6Addr // struct ipv6hdr
		if dst {
			off = 24
		}
	}
	b.add(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	if len(ps) == 1 {
		p := ps[0].Masked()
		if p.Bits() < int(n)*8 {
			b.add(&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n,
				Mask: prefixMask(p.Bits(), int(n)), Xor: make([]byte, n)})
		}
		b.cmp(eqOrNeq(invert), p.Addr().AsSlice())
		return nil
	}
	var ivs []interval
	for _, p := range ps {
		ivs = append(ivs, prefixInterval(p))
	}
	b.lookup(&anonSet{field: field, keyType: typ, keyLen: n, interval: true, elems: intervalElems(ivs)}, invert)
	return nil
}

func prefixMask(bits, n int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// ports matches the transport header's source (offset 0) or destination
// (offset 2) port, nft's `th sport`/`th dport`.
func (b *ruleBuilder) ports(field string, off uint32, prs []state.PortRange) error {
	if len(prs) == 0 {
		return nil
	}
	for _, p := range prs {
		if p.Start > p.End {
			return fmt.Errorf("%s: range %d-%d is backwards", field, p.Start, p.End)
		}
	}
	b.add(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
	be16 := func(v uint16) []byte { return be.AppendUint16(nil, v) }
	switch p := prs[0]; {
	case len(prs) == 1 && p.Start == p.End:
		b.cmp(expr.CmpOpEq, be16(p.Start))
	case len(prs) == 1:
		b.add(&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(p.Start), ToData: be16(p.End)})
	default:
		var ivs []interval
		for _, p := range prs {
			ivs = append(ivs, interval{be16(p.Start), be16(p.End)})
		}
		b.lookup(&anonSet{field: field, keyType: typeInetService, keyLen: 2, interval: true, elems: intervalElems(ivs)}, false)
	}
	return nil
}

func (b *ruleBuilder) icmpv6(r *state.FwRule) error {
	if len(r.ICMPv6Types) == 0 {
		return nil
	}
	if r.Proto != unix.IPPROTO_ICMPV6 {
		return errors.New("icmpv6_types needs proto 58 (ipv6-icmp)")
	}
	b.add(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1})
	if len(r.ICMPv6Types) == 1 {
		b.cmp(expr.CmpOpEq, []byte{r.ICMPv6Types[0]})
		return nil
	}
	s := &anonSet{field: "icmpv6_types", keyType: typeICMPv6Type, keyLen: 1}
	for _, t := range r.ICMPv6Types {
		s.elems = append(s.elems, setElem{key: []byte{t}})
	}
	s.elems = dedupElems(s.elems)
	b.lookup(s, false)
	return nil
}

// packetShape encodes the matches on header fields the kill switch
// needs for what is link-local by nature and for what asks routers to
// route it elsewhere: hop limit, a source on the outgoing device, IPv4
// options, IPv6 routing headers, forwarded packets.
func (b *ruleBuilder) packetShape(r *state.FwRule) error {
	if r.HopLimit != 0 {
		if r.Family != 6 {
			return errors.New("hop_limit needs family 6")
		}
		b.add(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1})
		b.cmp(expr.CmpOpEq, []byte{r.HopLimit})
	}
	if r.SaddrLocalOIF {
		b.add(&expr.Fib{Register: 1, ResultADDRTYPE: true, FlagSADDR: true, FlagOIF: true})
		b.cmp(expr.CmpOpEq, ne.AppendUint32(nil, unix.RTN_LOCAL))
	}
	if r.IPOptions {
		if r.Family != 4 {
			return errors.New("ip_options needs family 4")
		}
		// The header length is the low nibble of the first byte.
		b.add(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 1})
		b.add(&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x0f}, Xor: []byte{0}})
		b.cmp(expr.CmpOpNeq, []byte{5})
	}
	if r.RoutingHeader {
		if r.Family != 6 {
			return errors.New("routing_header needs family 6")
		}
		b.add(&expr.Exthdr{DestRegister: 1, Type: unix.IPPROTO_ROUTING, Offset: 0, Len: 1,
			Flags: unix.NFT_EXTHDR_F_PRESENT, Op: expr.ExthdrOpIpv6})
		b.cmp(expr.CmpOpEq, []byte{1})
	}
	if r.Forwarded {
		b.meta(expr.MetaKeyIIF)
		b.cmp(expr.CmpOpNeq, make([]byte, 4))
	}
	return nil
}

// uid matches meta skuid, which is in host byte order: a range compares
// it after conversion to network order, as nft does.
func (b *ruleBuilder) uid(u *state.UIDRange) {
	b.meta(expr.MetaKeySKUID)
	if u.Start == u.End {
		b.cmp(expr.CmpOpEq, ne.AppendUint32(nil, u.Start))
		return
	}
	b.add(&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4})
	b.add(&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be.AppendUint32(nil, u.Start), ToData: be.AppendUint32(nil, u.End)})
}

func dedupElems(es []setElem) []setElem {
	var out []setElem
	seen := make(map[string]bool, len(es))
	for _, e := range es {
		if !seen[string(e.key)] {
			seen[string(e.key)] = true
			out = append(out, e)
		}
	}
	return out
}

// lastAddr is the highest address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}
