// Package prefixkey packs (table, IPv4 prefix) pairs into 64-bit keys and
// sorts them by radix: for a million route-list destinations, a sorted
// slice checked by merging or binary search beats a hash map by far in
// time and memory.
package prefixkey

import (
	"cmp"
	"net/netip"
	"slices"
)

// Keyed is a key with a value riding along.
type Keyed struct{ K, V uint64 }

// Pack4 packs an IPv4 (table, prefix) into 64 bits when the table fits
// in 24 bits; ok is false otherwise (IPv6, big table numbers).
func Pack4(table uint32, p netip.Prefix) (k uint64, ok bool) {
	if !p.Addr().Is4() || table >= 1<<24 {
		return 0, false
	}
	a := p.Addr().As4()
	return uint64(table)<<40 | uint64(a[0])<<32 | uint64(a[1])<<24 | uint64(a[2])<<16 | uint64(a[3])<<8 | uint64(p.Bits()), true
}

// Sort sorts by key, least significant 16 bits first, skipping the digits
// that are the same everywhere (the table's, mostly). It is stable.
func Sort(a []Keyed) {
	if len(a) < 256 {
		slices.SortStableFunc(a, func(p, q Keyed) int { return cmp.Compare(p.K, q.K) })
		return
	}
	buf := make([]Keyed, len(a))
	src, dst := a, buf
	var count [1 << 16]int
	for shift := 0; shift < 64; shift += 16 {
		clear(count[:])
		for _, e := range src {
			count[uint16(e.K>>shift)]++
		}
		if count[uint16(src[0].K>>shift)] == len(src) {
			continue // one digit value: already in order
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, e := range src {
			d := uint16(e.K >> shift)
			dst[count[d]] = e
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// Search returns the index of the first element with key k in sorted a,
// and whether there is one.
func Search(a []Keyed, k uint64) (int, bool) {
	return slices.BinarySearchFunc(a, k, func(e Keyed, k uint64) int { return cmp.Compare(e.K, k) })
}

// Dest is a (table, destination) key without pointers, for maps of a
// million routes: they cost the garbage collector nothing to scan.
type Dest struct {
	table uint32
	addr  [16]byte
	bits  int16 // 0x100 set for IPv4: 0.0.0.0/0 is not ::/0
}

// DestOf is the key of destination p in table.
func DestOf(table uint32, p netip.Prefix) Dest {
	bits := int16(p.Bits())
	if p.Addr().Is4() {
		bits |= 0x100
	}
	return Dest{table: table, addr: p.Addr().As16(), bits: bits}
}
