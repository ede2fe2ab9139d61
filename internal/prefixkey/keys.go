package prefixkey

import "net/netip"

// Unpack4 is the prefix of a key Pack4 made (its table dropped).
func Unpack4(k uint64) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8)}), int(k&0xff))
}

// SortKeys sorts bare keys (no value riding along: half the memory to
// move) by radix, 11 bits a pass so that the counts stay in the cache,
// skipping the digits that are the same everywhere. Keys already in
// order cost one pass.
func SortKeys(a []uint64) {
	sorted := true
	var or, and uint64 = 0, ^uint64(0)
	for i, k := range a {
		if i > 0 && k < a[i-1] {
			sorted = false
		}
		or |= k
		and &= k
	}
	if sorted {
		return
	}
	const bits = 11
	buf := make([]uint64, len(a))
	src, dst := a, buf
	var count [1 << bits]int
	for shift := 0; shift < 64; shift += bits {
		if (or^and)>>shift&(1<<bits-1) == 0 {
			continue // one digit value: already in order
		}
		clear(count[:])
		for _, k := range src {
			count[k>>shift&(1<<bits-1)]++
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, k := range src {
			d := k >> shift & (1<<bits - 1)
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}
