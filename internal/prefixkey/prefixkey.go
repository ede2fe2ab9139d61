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
// that are the same everywhere (the table's, mostly). It is stable. Keys
// in address order already (a kernel dump's) cost two passes.
func Sort(a []Keyed) {
	if sortedRuns(a) {
		return
	}
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

// sortedRuns sorts a and reports true when a is in order but for the
// prefix lengths of one address (the lowest 8 bits of Pack4's keys): a
// kernel dump gives a table's IPv4 routes in address order, the prefixes
// of one address longest first. Otherwise it leaves a as it was.
func sortedRuns(a []Keyed) bool {
	for i := 1; i < len(a); i++ {
		if a[i].K>>8 < a[i-1].K>>8 {
			return false
		}
	}
	// Insertion sort within each run of one address: runs are short.
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].K < a[j-1].K; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
	return true
}
