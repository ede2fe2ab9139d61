package verify

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// The destination map cuts one family's destination space into groups:
// sets of addresses (unions of intervals) that every routing table, rule,
// firewall match and property treats alike. A table does not tell two of
// its prefixes apart when their routes are the same but for the
// destination and the chains of less specific prefixes above them are
// the same too (the kernel backtracks along that chain): a million routes
// of one route list through one device are then one group, not a million.

// layerEntry is one prefix of a layer with the key of what it holds.
type layerEntry struct {
	lo, hi u128
	key    string
	// terminal: a route here ends the lookup (see relevantRules).
	terminal bool
}

// seg is a run of addresses from start to the next seg's start.
type seg struct {
	start u128
	id    int32
}

// layer turns prefixes into segments whose id names the chain of
// prefixes holding them (0: none).
// chainTable interns chains across the layers of one space.
type chainTable struct {
	ids  map[string]int32
	keys map[int32]string
	// terminal: the innermost prefix of the chain holds a final route.
	terminal map[int32]bool
}

func newChainTable() *chainTable {
	return &chainTable{ids: map[string]int32{}, keys: map[int32]string{}, terminal: map[int32]bool{}}
}

func layer(entries []layerEntry, max u128, chains *chainTable) []seg {
	slices.SortFunc(entries, func(a, b layerEntry) int {
		if c := a.lo.cmp(b.lo); c != 0 {
			return c
		}
		return b.hi.cmp(a.hi) // the wider first
	})
	// Prefixes that are the same: one entry, keys joined.
	out := entries[:0]
	for _, e := range entries {
		if n := len(out); n > 0 && out[n-1].lo == e.lo && out[n-1].hi == e.hi {
			out[n-1].key += "\x00" + e.key
			out[n-1].terminal = out[n-1].terminal || e.terminal
			continue
		}
		out = append(out, e)
	}
	entries = out
	intern := func(key string, parent int32, terminal bool) int32 {
		// A prefix that holds what its parent holds changes nothing: the
		// kernel falls back from one to the other alike.
		if parent != 0 && chains.keys[parent] == key {
			return parent
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(parent))
		k := key + "\x01" + string(b[:])
		if id, ok := chains.ids[k]; ok {
			return id
		}
		id := int32(len(chains.ids) + 1)
		chains.ids[k] = id
		chains.keys[id] = key
		chains.terminal[id] = terminal
		return id
	}
	type open struct {
		hi u128
		id int32
	}
	var stack []open
	var segs []seg
	pos, done := u128{}, false
	emit := func(start u128, id int32) {
		n := len(segs)
		if n > 0 && segs[n-1].start == start {
			segs, n = segs[:n-1], n-1
		}
		if n > 0 && segs[n-1].id == id {
			return
		}
		segs = append(segs, seg{start, id})
	}
	top := func() int32 {
		if len(stack) == 0 {
			return 0
		}
		return stack[len(stack)-1].id
	}
	// closeUntil pops the prefixes that end before f, emitting the rest of each.
	closeUntil := func(f u128, all bool) {
		for len(stack) > 0 && (all || stack[len(stack)-1].hi.less(f)) {
			t := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if done {
				continue
			}
			if t.hi == max {
				done = true
				continue
			}
			pos = t.hi.add1()
			emit(pos, top())
		}
	}
	for _, e := range entries {
		closeUntil(e.lo, false)
		parent := top()
		id := intern(e.key, parent, e.terminal)
		emit(e.lo, id)
		stack = append(stack, open{e.hi, id})
		pos = e.lo
	}
	closeUntil(u128{}, true)
	_ = pos
	if len(segs) == 0 || segs[0].start != (u128{}) {
		segs = append([]seg{{u128{}, 0}}, segs...)
	}
	return segs
}

// group is one class of destinations.
type group struct {
	ivs [][2]u128 // inclusive intervals, ascending
	ids []int32   // the chain of each layer
}

// overlay combines layers: a group per distinct tuple of chain ids.
func overlay(layers [][]seg, max u128) []group {
	idx := make([]int, len(layers))
	cur := make([]int32, len(layers))
	byKey := map[string]int{}
	var groups []group
	key := make([]byte, 4*len(layers))
	pos := u128{}
	for {
		// Advance every layer whose next segment starts at pos.
		for l, segs := range layers {
			for idx[l] < len(segs) && !pos.less(segs[idx[l]].start) {
				cur[l] = segs[idx[l]].id
				idx[l]++
			}
		}
		next, end := u128{}, true
		for l, segs := range layers {
			if idx[l] < len(segs) {
				if st := segs[idx[l]].start; end || st.less(next) {
					next, end = st, false
				}
			}
		}
		last := max
		if !end {
			last = next.sub1()
		}
		for l, id := range cur {
			binary.LittleEndian.PutUint32(key[4*l:], uint32(id))
		}
		g, ok := byKey[string(key)]
		if !ok {
			g = len(groups)
			byKey[string(key)] = g
			groups = append(groups, group{ids: slices.Clone(cur)})
		}
		ivs := &groups[g].ivs
		if n := len(*ivs); n > 0 && (*ivs)[n-1][1].add1() == pos {
			(*ivs)[n-1][1] = last
		} else {
			*ivs = append(*ivs, [2]u128{pos, last})
		}
		if end {
			return groups
		}
		pos = next
	}
}

// contains reports whether the group holds address v.
func (g *group) contains(v u128) bool {
	i, _ := slices.BinarySearchFunc(g.ivs, v, func(iv [2]u128, v u128) int {
		if iv[1].less(v) {
			return -1
		}
		if v.less(iv[0]) {
			return 1
		}
		return 0
	})
	return i < len(g.ivs) && !v.less(g.ivs[i][0]) && !g.ivs[i][1].less(v)
}

// rep is the group's example address: inside its first interval, off the
// network address when the interval has room.
func (g *group) rep(fam int) netip.Addr {
	iv := g.ivs[0]
	if fam == 6 {
		// The largest interval: an address in the middle of the space
		// reads better than one next to a boundary like ::3.
		for _, x := range g.ivs {
			if d, e := sub(x[1], x[0]), sub(iv[1], iv[0]); e.less(d) {
				iv = x
			}
		}
	}
	v := iv[0]
	if v.less(iv[1]) {
		v = v.add1()
	}
	return uAddr(v, fam)
}

// size is the number of addresses, saturating at 2^64-1.
func (g *group) size() uint64 {
	var n uint64
	for _, iv := range g.ivs {
		d := u128{iv[1].hi - iv[0].hi, iv[1].lo - iv[0].lo}
		if iv[1].lo < iv[0].lo {
			d.hi--
		}
		if d.hi != 0 || d.lo == ^uint64(0) || n+d.lo+1 < n {
			return ^uint64(0)
		}
		n += d.lo + 1
	}
	return n
}

func sub(a, b u128) u128 {
	lo := a.lo - b.lo
	hi := a.hi - b.hi
	if a.lo < b.lo {
		hi--
	}
	return u128{hi, lo}
}
