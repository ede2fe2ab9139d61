package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

const sizeofFibRuleHdr = 12

func decodeRule(data []byte) (state.Rule, bool) {
	if len(data) < sizeofFibRuleHdr {
		return state.Rule{}, false
	}
	var r state.Rule
	switch data[0] {
	case unix.AF_INET:
		r = state.NewRule(4)
	case unix.AF_INET6:
		r = state.NewRule(6)
	default:
		return r, false
	}
	dstLen, srcLen := int(data[1]), int(data[2])
	r.TOS = data[3]
	r.Table = uint32(data[4])
	r.Action = state.RuleAction(data[7])
	flags := ne.Uint32(data[8:])
	r.Invert = flags&unix.FIB_RULE_INVERT != 0
	r.Unresolved = flags&unix.FIB_RULE_UNRESOLVED != 0
	r.IIFDetached = flags&unix.FIB_RULE_IIF_DETACHED != 0
	r.OIFDetached = flags&fibRuleOIFDetach != 0
	a := attrs{b: data[sizeofFibRuleHdr:]}
	for a.next() {
		switch a.typ {
		case unix.FRA_DST:
			r.Dst = netip.PrefixFrom(ipAddr(a.val), dstLen)
		case unix.FRA_SRC:
			r.Src = netip.PrefixFrom(ipAddr(a.val), srcLen)
		case unix.FRA_IIFNAME:
			r.IIF = a.str()
		case unix.FRA_OIFNAME:
			r.OIF = a.str()
		case unix.FRA_GOTO:
			r.Goto = a.u32()
		case unix.FRA_PRIORITY:
			r.Priority = a.u32()
		case unix.FRA_FWMARK:
			r.Mark = a.u32()
		case unix.FRA_FWMASK:
			r.Mask = a.u32()
		case unix.FRA_FLOW:
			r.Realms = a.u32()
		case unix.FRA_TUN_ID:
			if len(a.val) >= 8 {
				r.TunID = binary.BigEndian.Uint64(a.val)
			}
		case unix.FRA_SUPPRESS_IFGROUP:
			r.SuppressIfGroup = int(int32(a.u32()))
		case unix.FRA_SUPPRESS_PREFIXLEN:
			r.SuppressPrefixLen = int(int32(a.u32()))
		case unix.FRA_TABLE:
			r.Table = a.u32()
		case fraL3MDev:
			r.L3MDev = a.u8() != 0
		case unix.FRA_UID_RANGE:
			if len(a.val) >= 8 {
				r.UID = &state.UIDRange{Start: ne.Uint32(a.val), End: ne.Uint32(a.val[4:])}
			}
		case unix.FRA_PROTOCOL:
			r.Protocol = state.Protocol(a.u8())
		case unix.FRA_IP_PROTO:
			r.IPProto = a.u8()
		case unix.FRA_SPORT_RANGE:
			r.SPort = portRange(a.val)
		case unix.FRA_DPORT_RANGE:
			r.DPort = portRange(a.val)
		}
	}
	return r, true
}

func portRange(b []byte) *state.PortRange {
	if len(b) < 4 {
		return nil
	}
	return &state.PortRange{Start: ne.Uint16(b), End: ne.Uint16(b[2:])}
}

// dumpRules lists the rules of one family in list order.
func (c *conn) dumpRules(af uint8) ([]state.Rule, error) {
	return dumpAll(c, unix.RTM_GETRULE, unix.RTM_NEWRULE, sizeofFibRuleHdr, af, nil, decodeRule)
}

// encodeRule appends an RTM_NEWRULE or RTM_DELRULE carrying every
// attribute of r, so that a delete removes exactly that rule.
func (e *encoder) encodeRule(act state.Action, r *state.Rule, seq uint32) error {
	var af uint8
	switch r.Family {
	case 4:
		af = unix.AF_INET
	case 6:
		af = unix.AF_INET6
	default:
		return fmt.Errorf("rule family must be 4 or 6, not %d", r.Family)
	}
	if act == state.Replace {
		return fmt.Errorf("the kernel cannot replace a rule in place")
	}
	typ, flags, ok := request(act, unix.RTM_NEWRULE, unix.RTM_DELRULE)
	if !ok {
		return fmt.Errorf("unknown action %d", act)
	}
	off := e.begin(typ, flags, seq)
	h := e.zeros(sizeofFibRuleHdr)
	h[0] = af
	if r.Dst.IsValid() {
		h[1] = uint8(r.Dst.Bits())
	}
	if r.Src.IsValid() {
		h[2] = uint8(r.Src.Bits())
	}
	h[3] = r.TOS
	h[7] = uint8(r.Action)
	if r.Action == state.ActionLookup {
		h[4] = compatTable(r.Table)
	}
	var fl uint32
	if r.Invert {
		fl |= unix.FIB_RULE_INVERT
	}
	ne.PutUint32(h[8:], fl)
	e.u32(unix.FRA_PRIORITY, r.Priority)
	if r.Src.IsValid() {
		e.addr(unix.FRA_SRC, r.Src.Addr())
	}
	if r.Dst.IsValid() {
		e.addr(unix.FRA_DST, r.Dst.Addr())
	}
	if r.IIF != "" {
		e.str(unix.FRA_IIFNAME, r.IIF)
	}
	if r.OIF != "" {
		e.str(unix.FRA_OIFNAME, r.OIF)
	}
	if r.Mark != 0 || r.Mask != 0 {
		e.u32(unix.FRA_FWMARK, r.Mark)
	}
	if r.Mask != 0 {
		e.u32(unix.FRA_FWMASK, r.Mask)
	}
	if r.Realms != 0 {
		e.u32(unix.FRA_FLOW, r.Realms)
	}
	if r.TunID != 0 {
		e.be64(unix.FRA_TUN_ID, r.TunID)
	}
	if r.SuppressIfGroup >= 0 {
		e.u32(unix.FRA_SUPPRESS_IFGROUP, uint32(r.SuppressIfGroup))
	}
	if r.SuppressPrefixLen >= 0 {
		e.u32(unix.FRA_SUPPRESS_PREFIXLEN, uint32(r.SuppressPrefixLen))
	}
	switch {
	case r.Action == state.ActionGoto:
		e.u32(unix.FRA_GOTO, r.Goto)
	case r.Action == state.ActionLookup && r.Table != 0:
		e.u32(unix.FRA_TABLE, r.Table)
	}
	if r.L3MDev {
		e.u8(fraL3MDev, 1)
	}
	if r.UID != nil {
		e.attrHdr(unix.FRA_UID_RANGE, 8)
		e.b = ne.AppendUint32(e.b, r.UID.Start)
		e.b = ne.AppendUint32(e.b, r.UID.End)
	}
	e.u8(unix.FRA_PROTOCOL, uint8(r.Protocol))
	if r.IPProto != 0 {
		e.u8(unix.FRA_IP_PROTO, r.IPProto)
	}
	e.ports(unix.FRA_SPORT_RANGE, r.SPort)
	e.ports(unix.FRA_DPORT_RANGE, r.DPort)
	e.end(off)
	return nil
}

func (e *encoder) ports(typ uint16, p *state.PortRange) {
	if p == nil {
		return
	}
	e.attrHdr(typ, 4)
	e.b = ne.AppendUint16(e.b, p.Start)
	e.b = ne.AppendUint16(e.b, p.End)
}
