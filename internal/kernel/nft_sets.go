package kernel

import (
	"bytes"
	"fmt"
	"math/bits"
	"net/netip"
	"reflect"
	"slices"
	"sort"

	"github.com/tunroute/tunroute/internal/state"
)

// interval is a closed range of big-endian keys of one length.
type interval struct{ lo, hi []byte }

func prefixInterval(p netip.Prefix) interval {
	p = p.Masked()
	lo := p.Addr().AsSlice()
	hi := slices.Clone(lo)
	for i := p.Bits(); i < len(hi)*8; i++ {
		hi[i/8] |= 0x80 >> (i % 8)
	}
	return interval{lo, hi}
}

// next returns k+1 and false, or zero and true when k is the largest key.
func next(k []byte) ([]byte, bool) {
	n := slices.Clone(k)
	for i := len(n) - 1; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return n, false
		}
	}
	return n, true
}

func prev(k []byte) []byte {
	p := slices.Clone(k)
	for i := len(p) - 1; i >= 0; i-- {
		p[i]--
		if p[i] != 0xff {
			break
		}
	}
	return p
}

// intervalElems turns intervals into the elements of an interval set: each
// interval's first key, and the first key after it flagged as an interval
// end (none after an interval that reaches the largest key). The kernel
// refuses overlapping intervals, so those are merged; adjacent ones stay
// apart, as given.
func intervalElems(ivs []interval) []setElem {
	ivs = slices.Clone(ivs)
	sort.Slice(ivs, func(i, j int) bool { return bytes.Compare(ivs[i].lo, ivs[j].lo) < 0 })
	var merged []interval
	for _, iv := range ivs {
		if n := len(merged); n > 0 && bytes.Compare(iv.lo, merged[n-1].hi) <= 0 {
			if bytes.Compare(iv.hi, merged[n-1].hi) > 0 {
				merged[n-1].hi = iv.hi
			}
			continue
		}
		merged = append(merged, iv)
	}
	var es []setElem
	for _, iv := range merged {
		es = append(es, setElem{key: iv.lo})
		if end, wrapped := next(iv.hi); !wrapped {
			es = append(es, setElem{key: end, end: true})
		}
	}
	return es
}

// elemIntervals reads intervals back from an interval set's elements, in
// ascending order. An end element without a start before it (nft puts one
// at key 0) is skipped.
func elemIntervals(es []setElem) ([]interval, error) {
	es = sortedElems(es)
	var out []interval
	for i := 0; i < len(es); i++ {
		if es[i].end {
			continue
		}
		lo := es[i].key
		if i+1 < len(es) && es[i+1].end {
			out = append(out, interval{lo, prev(es[i+1].key)})
			i++
			continue
		}
		if i+1 < len(es) {
			return nil, fmt.Errorf("interval set: start %x follows start %x", es[i+1].key, lo)
		}
		hi := bytes.Repeat([]byte{0xff}, len(lo))
		out = append(out, interval{lo, hi})
	}
	return out, nil
}

// sortedElems orders elements by key, an interval end before a start of
// the same key (adjacent intervals).
func sortedElems(es []setElem) []setElem {
	es = slices.Clone(es)
	sort.SliceStable(es, func(i, j int) bool {
		if c := bytes.Compare(es[i].key, es[j].key); c != 0 {
			return c < 0
		}
		return es[i].end && !es[j].end
	})
	return es
}

// intervalPrefixes covers [lo, hi] with the fewest prefixes, in order.
func intervalPrefixes(iv interval) []netip.Prefix {
	var out []netip.Prefix
	lo, bits := iv.lo, len(iv.lo)*8
	for {
		// The largest block that starts at lo (lo is aligned to it) and
		// ends at or before hi (it holds at most hi-lo+1 keys).
		host := min(trailingZeros(lo), log2Count(sub(iv.hi, lo)))
		a, _ := netip.AddrFromSlice(lo)
		out = append(out, netip.PrefixFrom(a, bits-host))
		end := slices.Clone(lo)
		for i := 0; i < host; i++ {
			end[len(end)-1-i/8] |= 1 << (i % 8)
		}
		if bytes.Compare(end, iv.hi) >= 0 {
			return out
		}
		lo, _ = next(end)
	}
}

func trailingZeros(k []byte) int {
	n := 0
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] != 0 {
			return n + bits.TrailingZeros8(k[i])
		}
		n += 8
	}
	return n
}

// sub returns a-b for a >= b, big endian.
func sub(a, b []byte) []byte {
	d := make([]byte, len(a))
	borrow := 0
	for i := len(a) - 1; i >= 0; i-- {
		v := int(a[i]) - int(b[i]) - borrow
		borrow = 0
		if v < 0 {
			v += 256
			borrow = 1
		}
		d[i] = byte(v)
	}
	return d
}

// log2Count returns floor(log2(d+1)): the largest k with 2^k <= d+1.
func log2Count(d []byte) int {
	n, wrapped := next(d)
	if wrapped {
		return len(d) * 8 // d+1 is 2^bits
	}
	for i, b := range n {
		if b != 0 {
			return (len(n)-i-1)*8 + bits.Len8(b) - 1
		}
	}
	return 0
}

// setValues decodes the elements of a set that holds the FwRule list
// field into that list's values, in canonical (ascending) order.
func setValues(field string, es []setElem) (any, error) {
	switch field {
	case "iif", "oif", "not_oif", "not_iif":
		var names []string
		for _, e := range es {
			names = append(names, cstring(e.key))
		}
		sort.Strings(names)
		return names, nil
	case "icmpv6_types":
		var ts []uint8
		for _, e := range es {
			if len(e.key) != 1 {
				return nil, fmt.Errorf("icmpv6 type key of %d bytes", len(e.key))
			}
			ts = append(ts, e.key[0])
		}
		slices.Sort(ts)
		return ts, nil
	case "saddr", "daddr", "not_daddr":
		ivs, err := elemIntervals(es)
		if err != nil {
			return nil, err
		}
		var ps []netip.Prefix
		for _, iv := range ivs {
			if len(iv.lo) != 4 && len(iv.lo) != 16 {
				return nil, fmt.Errorf("address key of %d bytes", len(iv.lo))
			}
			ps = append(ps, intervalPrefixes(iv)...)
		}
		return ps, nil
	case "sports", "dports":
		ivs, err := elemIntervals(es)
		if err != nil {
			return nil, err
		}
		var prs []state.PortRange
		for _, iv := range ivs {
			if len(iv.lo) != 2 {
				return nil, fmt.Errorf("port key of %d bytes", len(iv.lo))
			}
			prs = append(prs, state.PortRange{Start: be.Uint16(iv.lo), End: be.Uint16(iv.hi)})
		}
		return prs, nil
	}
	return nil, fmt.Errorf("no set holds %q", field)
}

// fwList is one of FwRule's lists, whatever its element type.
type fwList interface {
	get() any
	len() int
	clear()
	// set stores v (as returned by setValues) in the list, in the order
	// perm gives (perm[i] is the index in v of element i), or in v's
	// order when perm is nil.
	set(v any, perm []int) error
}

// listPtr is the fwList a pointer to the list is.
type listPtr[T any] struct{ p *[]T }

func (l listPtr[T]) get() any                    { return *l.p }
func (l listPtr[T]) len() int                    { return len(*l.p) }
func (l listPtr[T]) clear()                      { *l.p = nil }
func (l listPtr[T]) set(v any, perm []int) error { return permute(l.p, v.([]T), perm) }

// listField returns r's list with that JSON name, nil if it has none.
func listField(r *state.FwRule, field string) fwList {
	switch field {
	case "iif":
		return listPtr[string]{&r.IIF}
	case "oif":
		return listPtr[string]{&r.OIF}
	case "not_oif":
		return listPtr[string]{&r.NotOIF}
	case "not_iif":
		return listPtr[string]{&r.NotIIF}
	case "saddr":
		return listPtr[netip.Prefix]{&r.Saddr}
	case "daddr":
		return listPtr[netip.Prefix]{&r.Daddr}
	case "not_daddr":
		return listPtr[netip.Prefix]{&r.NotDaddr}
	case "sports":
		return listPtr[state.PortRange]{&r.SPorts}
	case "dports":
		return listPtr[state.PortRange]{&r.DPorts}
	case "icmpv6_types":
		return listPtr[uint8]{&r.ICMPv6Types}
	}
	return nil
}

// getList returns the value of r's list field with that JSON name.
func getList(r *state.FwRule, field string) any {
	if l := listField(r, field); l != nil {
		return l.get()
	}
	return nil
}

// clearList empties r's list field with that JSON name.
func clearList(r *state.FwRule, field string) {
	if l := listField(r, field); l != nil {
		l.clear()
	}
}

// setList stores v (as returned by setValues) in r's list field with that
// JSON name, as fwList.set does.
func setList(r *state.FwRule, field string, v any, perm []int) error {
	if l := listField(r, field); l != nil {
		return l.set(v, perm)
	}
	return fmt.Errorf("no list %q", field)
}

func permute[T any](dst *[]T, v []T, perm []int) error {
	if perm == nil {
		*dst = v
		return nil
	}
	if len(perm) != len(v) {
		return fmt.Errorf("order of %d for %d elements", len(perm), len(v))
	}
	out := make([]T, len(v))
	for i, k := range perm {
		if k < 0 || k >= len(v) {
			return fmt.Errorf("order index %d out of range", k)
		}
		out[i] = v[k]
	}
	*dst = out
	return nil
}

// orderOf returns perm such that canon[perm[i]] == orig[i] for every i
// (the inverse of setList's permutation), or ok false if orig is not a
// permutation of canon. A nil perm means orig is already canon.
func orderOf(orig, canon any) (perm []int, ok bool) {
	if reflect.DeepEqual(orig, canon) {
		return nil, true
	}
	os, cs := stringsOf(orig), stringsOf(canon)
	if len(os) != len(cs) {
		return nil, false
	}
	at := make(map[string][]int, len(cs)) // positions in canon, by value
	for k := len(cs) - 1; k >= 0; k-- {
		at[cs[k]] = append(at[cs[k]], k)
	}
	perm = make([]int, len(os))
	for i, x := range os {
		ks := at[x]
		if len(ks) == 0 {
			return nil, false
		}
		perm[i], at[x] = ks[len(ks)-1], ks[:len(ks)-1]
	}
	return perm, true
}

func stringsOf(v any) []string {
	var out []string
	switch l := v.(type) {
	case []string:
		out = l
	case []netip.Prefix:
		for _, x := range l {
			out = append(out, x.String())
		}
	case []state.PortRange:
		for _, x := range l {
			out = append(out, fmt.Sprint(x.Start, "-", x.End))
		}
	case []uint8:
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}
