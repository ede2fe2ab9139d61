package kernel

import (
	"fmt"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

const sizeofIfaCacheinfo = 16

func decodeAddr(data []byte, dev func(int) string) (state.Addr, bool) {
	if len(data) < unix.SizeofIfAddrmsg {
		return state.Addr{}, false
	}
	plen := int(data[1])
	a := state.Addr{
		Index: int(ne.Uint32(data[4:])),
		Scope: state.Scope(data[3]),
		Flags: state.AddrFlags(data[2]),
	}
	var local, address netip.Addr
	at := attrs{b: data[unix.SizeofIfAddrmsg:]}
	for at.next() {
		switch at.typ {
		case unix.IFA_ADDRESS:
			address = ipAddr(at.val)
		case unix.IFA_LOCAL:
			local = ipAddr(at.val)
		case unix.IFA_BROADCAST:
			a.Broadcast = ipAddr(at.val)
		case unix.IFA_LABEL:
			a.Label = at.str()
		case unix.IFA_FLAGS:
			a.Flags = state.AddrFlags(at.u32())
		case ifaProto:
			a.Proto = state.Protocol(at.u8())
		case unix.IFA_CACHEINFO:
			if len(at.val) >= sizeofIfaCacheinfo {
				a.PreferredLft = lifetime(ne.Uint32(at.val))
				a.ValidLft = lifetime(ne.Uint32(at.val[4:]))
			}
		}
	}
	// IPv6 sends only IFA_ADDRESS unless there is a peer; IPv4 sends
	// IFA_LOCAL always and IFA_ADDRESS is the peer (or the same address).
	switch {
	case local.IsValid():
		a.Prefix = netip.PrefixFrom(local, plen)
		if address.IsValid() && address != local {
			a.Peer = netip.PrefixFrom(address, plen)
		}
	case address.IsValid():
		a.Prefix = netip.PrefixFrom(address, plen)
	default:
		return a, false
	}
	a.Dev = dev(a.Index)
	return a, true
}

// lifetime maps the kernel's "forever" to the model's 0 (omitted).
func lifetime(v uint32) uint32 {
	if v == state.Forever {
		return 0
	}
	return v
}

// dumpAddrs lists the addresses of one family, in kernel order.
func (c *conn) dumpAddrs(af uint8, dev func(int) string) ([]state.Addr, error) {
	return dumpAll(c, unix.RTM_GETADDR, unix.RTM_NEWADDR, unix.SizeofIfAddrmsg, af, nil, func(data []byte) (state.Addr, bool) {
		return decodeAddr(data, dev)
	})
}

// addrSettable are the IFA_F_* flags a request may carry; the others are
// the kernel's to set.
const addrSettable = state.AddrNoDAD | state.AddrOptimistic | state.AddrHomeAddress |
	state.AddrManageTemp | state.AddrNoPrefixRoute | state.AddrMcAutoJoin

// encodeAddr appends an RTM_NEWADDR or RTM_DELADDR for a on ifindex.
func (e *encoder) encodeAddr(act state.Action, a *state.Addr, ifindex int, seq uint32) error {
	if !a.Prefix.IsValid() {
		return fmt.Errorf("address has no prefix")
	}
	local := a.Prefix.Addr()
	typ, flags, ok := request(act, unix.RTM_NEWADDR, unix.RTM_DELADDR)
	if !ok {
		return fmt.Errorf("unknown action %d", act)
	}
	off := e.begin(typ, flags, seq)
	h := e.zeros(unix.SizeofIfAddrmsg)
	h[0] = family(local)
	h[1] = uint8(a.Prefix.Bits())
	h[2] = uint8(a.Flags & addrSettable)
	h[3] = uint8(a.Scope)
	ne.PutUint32(h[4:], uint32(ifindex))
	e.addr(unix.IFA_LOCAL, local)
	if a.Peer.IsValid() {
		e.addr(unix.IFA_ADDRESS, a.Peer.Addr())
	} else {
		e.addr(unix.IFA_ADDRESS, local)
	}
	if act != state.Delete {
		if a.Broadcast.IsValid() {
			e.addr(unix.IFA_BROADCAST, a.Broadcast)
		}
		if a.Label != "" && local.Is4() {
			e.str(unix.IFA_LABEL, a.Label)
		}
		e.u32(unix.IFA_FLAGS, uint32(a.Flags&addrSettable))
		if a.Proto != 0 {
			e.u8(ifaProto, uint8(a.Proto))
		}
		if valid, pref, ok := lifetimes(a); ok {
			ci := make([]byte, sizeofIfaCacheinfo)
			ne.PutUint32(ci, pref)
			ne.PutUint32(ci[4:], valid)
			e.attr(unix.IFA_CACHEINFO, ci)
		}
	}
	e.end(off)
	return nil
}

// lifetimes converts the model's lifetimes (0 = forever) for a request;
// ok is false when both are forever. A finite valid lifetime with
// PreferredLft 0, or the deprecated flag, means preferred 0.
func lifetimes(a *state.Addr) (valid, pref uint32, ok bool) {
	valid, pref = a.ValidLft, a.PreferredLft
	deprecated := a.Flags&state.AddrDeprecated != 0
	if valid == 0 && pref == 0 && !deprecated {
		return 0, 0, false
	}
	if valid == 0 {
		valid = state.Forever
	}
	if deprecated {
		pref = 0
	} else if pref == 0 && valid == state.Forever {
		pref = state.Forever
	}
	return valid, pref, true
}
