package verify

import (
	"math/bits"
	"net/netip"
)

// u128 is an unsigned 128-bit number: an IPv6 address, or an IPv4 address
// in its low 32 bits, or any smaller field value.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }
func (a u128) cmp(b u128) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}
func (a u128) add1() u128 {
	lo, c := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + c, lo}
}
func (a u128) sub1() u128 {
	lo, b := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - b, lo}
}
func small(v uint64) u128 { return u128{0, v} }

// addrU converts an address of family fam (4 or 6) to u128.
func addrU(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return small(uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3]))
	}
	b := a.As16()
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return u128{hi, lo}
}

// uAddr converts back.
func uAddr(v u128, fam int) netip.Addr {
	if fam == 4 {
		x := uint32(v.lo)
		return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

// prefixRange is the first and last address of p.
func prefixRange(p netip.Prefix) (u128, u128) {
	p = p.Masked()
	first := addrU(p.Addr())
	width := 128
	if p.Addr().Is4() {
		width = 32
	}
	host := width - p.Bits()
	last := first
	switch {
	case host >= 128:
		last = u128{^uint64(0), ^uint64(0)}
	case host >= 64:
		last.lo = ^uint64(0)
		last.hi |= (uint64(1) << (host - 64)) - 1
	case host > 0:
		last.lo |= (uint64(1) << host) - 1
	}
	return first, last
}

// maxOf is the largest value of an address family's space.
func maxAddr(fam int) u128 {
	if fam == 4 {
		return small(0xffffffff)
	}
	return u128{^uint64(0), ^uint64(0)}
}
