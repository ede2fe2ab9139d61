package kernel

import (
	"encoding/binary"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// This file holds the netlink wire format: an append-only message encoder
// that allocates nothing per message (Execute encodes up to a million routes)
// and an attribute iterator that decodes in place.

var ne = binary.NativeEndian

// Constants that golang.org/x/sys/unix does not define (yet).
const (
	ifaProto          = 11 // IFA_PROTO, kernel 6.3+
	rtaNHID           = 30 // RTA_NH_ID
	fraL3MDev         = 19 // FRA_L3MDEV
	fibRuleOIFDetach  = 0x10
	vethInfoPeer      = 1 // VETH_INFO_PEER
	iflaTargetNetnsID = 46
	rtextSkipStats    = 1 << 3 // RTEXT_FILTER_SKIP_STATS
	nlaTypeMask       = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nlmsgHdrLen       = unix.SizeofNlMsghdr
)

func align4(n int) int { return (n + 3) &^ 3 }

// request is the message type and flags of a change for act: newType
// with create flags for Add and Replace, delType for Delete; ok is false
// for another action. It inlines into the encoders, which a million
// routes go through.
func request(act state.Action, newType, delType uint16) (typ, flags uint16, ok bool) {
	switch act {
	case state.Add:
		return newType, unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL, true
	case state.Replace:
		return newType, unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_REPLACE, true
	case state.Delete:
		return delType, unix.NLM_F_REQUEST, true
	}
	return 0, 0, false
}

// encoder appends netlink messages to one buffer.
type encoder struct {
	b []byte
	// dstAt is where encodeRoute put RTA_DST's payload, from the start of
	// the message; 0 when it put none.
	dstAt int
}

func (e *encoder) reset() { e.b = e.b[:0] }

// begin starts a message and returns its offset for end.
func (e *encoder) begin(typ, flags uint16, seq uint32) int {
	off := len(e.b)
	e.b = append(e.b, make([]byte, nlmsgHdrLen)...)
	h := e.b[off:]
	ne.PutUint16(h[4:], typ)
	ne.PutUint16(h[6:], flags)
	ne.PutUint32(h[8:], seq)
	return off
}

// end fixes the length of the message started at off.
func (e *encoder) end(off int) {
	ne.PutUint32(e.b[off:], uint32(len(e.b)-off))
}

// raw appends a fixed header (already a multiple of 4 bytes long).
func (e *encoder) raw(p []byte) { e.b = append(e.b, p...) }

// zeros appends n zero bytes and returns them for filling in.
func (e *encoder) zeros(n int) []byte {
	off := len(e.b)
	e.b = append(e.b, make([]byte, n)...)
	return e.b[off:]
}

func (e *encoder) attrHdr(typ uint16, n int) {
	var h [4]byte
	ne.PutUint16(h[:], uint16(4+n))
	ne.PutUint16(h[2:], typ)
	e.b = append(e.b, h[:]...)
}

func (e *encoder) pad() {
	for len(e.b)%4 != 0 {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) attr(typ uint16, data []byte) {
	e.attrHdr(typ, len(data))
	e.b = append(e.b, data...)
	e.pad()
}

func (e *encoder) u8(typ uint16, v uint8) {
	e.attrHdr(typ, 1)
	e.b = append(e.b, v, 0, 0, 0)
}

func (e *encoder) u16(typ uint16, v uint16) {
	e.attrHdr(typ, 2)
	e.b = ne.AppendUint16(e.b, v)
	e.b = append(e.b, 0, 0)
}

func (e *encoder) u32(typ uint16, v uint32) {
	e.attrHdr(typ, 4)
	e.b = ne.AppendUint32(e.b, v)
}

func (e *encoder) be16(typ uint16, v uint16) {
	e.attrHdr(typ, 2)
	e.b = binary.BigEndian.AppendUint16(e.b, v)
	e.b = append(e.b, 0, 0)
}

func (e *encoder) be64(typ uint16, v uint64) {
	e.attrHdr(typ, 8)
	e.b = binary.BigEndian.AppendUint64(e.b, v)
}

func (e *encoder) str(typ uint16, s string) {
	e.attrHdr(typ, len(s)+1)
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
	e.pad()
}

func (e *encoder) addr(typ uint16, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		e.attr(typ, v[:])
	} else {
		v := a.As16()
		e.attr(typ, v[:])
	}
}

// nest starts a nested attribute; endNest fixes its length.
func (e *encoder) nest(typ uint16) int {
	off := len(e.b)
	e.attrHdr(typ|unix.NLA_F_NESTED, 0)
	return off
}

func (e *encoder) endNest(off int) {
	ne.PutUint16(e.b[off:], uint16(len(e.b)-off))
}

// attrs iterates over the netlink attributes in b.
type attrs struct {
	b   []byte
	typ uint16
	val []byte
}

func (a *attrs) next() bool {
	if len(a.b) < 4 {
		return false
	}
	l := int(ne.Uint16(a.b))
	if l < 4 || l > len(a.b) {
		return false
	}
	a.typ = ne.Uint16(a.b[2:]) & nlaTypeMask
	a.val = a.b[4:l]
	if n := align4(l); n < len(a.b) {
		a.b = a.b[n:]
	} else {
		a.b = nil
	}
	return true
}

// noValue stands in for an attribute too short for the integer read from
// it, which then reads as 0.
var noValue [8]byte

// fixed returns the attribute's value if it holds n bytes, else n zeros.
func (a *attrs) fixed(n int) []byte {
	if len(a.val) < n {
		return noValue[:n]
	}
	return a.val
}

func (a *attrs) u8() uint8   { return a.fixed(1)[0] }
func (a *attrs) u16() uint16 { return ne.Uint16(a.fixed(2)) }
func (a *attrs) u32() uint32 { return ne.Uint32(a.fixed(4)) }

func (a *attrs) str() string { return cstring(a.val) }

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// ipAddr decodes a 4- or 16-byte address; the zero Addr for anything else.
func ipAddr(b []byte) netip.Addr {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b))
	case 16:
		return netip.AddrFrom16([16]byte(b))
	}
	return netip.Addr{}
}

// family returns the AF_* of an address.
func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// zeroAddr returns the unspecified address of an AF_* family.
func zeroAddr(af uint8) netip.Addr {
	if af == unix.AF_INET {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
