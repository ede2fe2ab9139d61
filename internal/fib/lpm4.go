package fib

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
)

// table4 is one IPv4 routing table: a node per distinct prefix, holding
// its routes ("aliases") in the kernel's order, and a longest-prefix-match
// index over the nodes. Small tables use bart; large ones (a full
// Internet table) use dir4, a multibit trie with strides 16-8-8 whose
// lookup costs one or two cache misses.
type table4 struct {
	id       uint32
	nodes    []node4
	multi    []int32  // route classes of prefixes with several routes
	classes  []alias4 // the FIB's interned route classes (shared)
	nDefault int      // tb_num_default: routes with prefix length 0
	small    *bart.Table[int32]
	dir      *dir4
	// missing: left out of a partial FIB (NewPartial); only: holding
	// the kernel's route for one destination, onlyDst, and nothing else
	// of the table.
	missing, only bool
	onlyDst       uint32
}

// node4 is one prefix: 16 bytes, no pointers.
type node4 struct {
	addr   uint32
	parent int32 // the next shorter prefix of this table covering this one; -1
	class  int32 // n == 1: the route's class; else its routes' classes are multi[class:class+n]
	plen   uint8
	_      uint8
	n      uint16
}

// alias4 is a route class: what a route has besides its prefix. A full
// table has few of them.
type alias4 struct {
	attrs  int32
	metric uint32
	tos    uint8
}

func (t *table4) alias(node int32, k int) alias4 {
	nd := &t.nodes[node]
	if nd.n == 1 {
		return t.classes[nd.class]
	}
	return t.classes[t.multi[int(nd.class)+k]]
}

// lookup returns the node of the longest prefix covering a.
func (t *table4) lookup(a uint32) (int32, bool) {
	if t.dir != nil {
		return t.dir.lookup(a)
	}
	return t.small.Lookup(u4(a))
}

// parent returns the node of the next shorter prefix covering node.
func (t *table4) parent(node int32) (int32, bool) {
	p := t.nodes[node].parent
	return p, p >= 0
}

// dirThreshold: tables with more prefixes use dir4, if it does not take
// more than dirBytesPerRoute bytes of blocks per prefix (a full table
// takes about 60; 100,000 prefixes spread over the whole space would take
// 500, and use bart).
var dirThreshold = 16384

var dirBytesPerRoute = 64

// dirBytes is the memory dir4 would take for nodes.
func dirBytes(nodes []node4) int {
	l2 := map[uint32]struct{}{}
	l3 := map[uint32]struct{}{}
	for i := range nodes {
		nd := &nodes[i]
		if nd.plen > 16 {
			l2[nd.addr>>16] = struct{}{}
		}
		if nd.plen > 24 {
			l3[nd.addr>>8] = struct{}{}
		}
	}
	return 4<<16 + (len(l2)+len(l3))*4*256
}

// finish orders each node's routes, builds the LPM index and the parents.
// routes[i] are the routes of node i in dump order; class interns a route.
func (t *table4) finish(routes [][]alias4, class func(alias4) int32) {
	for i := range t.nodes {
		rs := routes[i]
		// fib_find_alias order: TOS descending, then priority ascending;
		// the dump order breaks ties.
		if len(rs) > 1 {
			slices.SortStableFunc(rs, func(a, b alias4) int {
				if a.tos != b.tos {
					return cmp.Compare(b.tos, a.tos)
				}
				return cmp.Compare(a.metric, b.metric)
			})
		}
		nd := &t.nodes[i]
		nd.n = uint16(min(len(rs), 65535))
		if nd.n == 1 {
			nd.class = class(rs[0])
		} else {
			nd.class = int32(len(t.multi))
			for _, r := range rs[:nd.n] {
				t.multi = append(t.multi, class(r))
			}
		}
		nd.parent = -1
	}
	if len(t.nodes) > dirThreshold && dirBytes(t.nodes) <= dirBytesPerRoute*len(t.nodes) {
		t.dir = buildDir4(t.nodes)
		return
	}
	t.small = new(bart.Table[int32])
	for i := range t.nodes {
		nd := &t.nodes[i]
		t.small.Insert(netip.PrefixFrom(u4(nd.addr), int(nd.plen)), int32(i))
	}
	for i := range t.nodes {
		nd := &t.nodes[i]
		if nd.plen == 0 {
			continue
		}
		if _, p, ok := t.small.LookupPrefixLPM(netip.PrefixFrom(u4(nd.addr), int(nd.plen)-1)); ok {
			nd.parent = p
		}
	}
}

// dir4 is a multibit trie with strides 16, 8 and 8. An entry is 0 (no
// route), node index+1, or dirChild|block for a block of 256 entries
// indexed by the next 8 bits. Shorter prefixes are pushed down into the
// blocks of longer ones, so a lookup is one, two or three array reads.
type dir4 struct {
	l1     []uint32 // 65536 entries
	blocks []uint32 // 256 entries per block
}

const dirChild = 1 << 31

func (d *dir4) lookup(a uint32) (int32, bool) {
	e := d.l1[a>>16]
	if e&dirChild != 0 {
		e = d.blocks[(e&^dirChild)<<8|(a>>8)&0xff]
		if e&dirChild != 0 {
			e = d.blocks[(e&^dirChild)<<8|a&0xff]
		}
	}
	return int32(e) - 1, e != 0
}

// buildDir4 inserts the prefixes shortest first; the entry a prefix
// overwrites at its first address is its parent.
func buildDir4(nodes []node4) *dir4 {
	d := &dir4{l1: make([]uint32, 1<<16)}
	// Size the blocks exactly: one per /16 holding a longer prefix, one
	// per /24 holding a prefix longer than 24.
	var l2 [1 << 16 / 64]uint64
	l3 := map[uint32]bool{}
	nblocks := 0
	for i := range nodes {
		a := nodes[i].addr
		if nodes[i].plen > 16 && l2[a>>22]&(1<<(a>>16&63)) == 0 {
			l2[a>>22] |= 1 << (a >> 16 & 63)
			nblocks++
		}
		if nodes[i].plen > 24 && !l3[a>>8] {
			l3[a>>8] = true
			nblocks++
		}
	}
	d.blocks = make([]uint32, 0, nblocks<<8)
	// Shortest first (a counting sort; the order among prefixes of one
	// length does not matter, they do not overlap).
	var count [34]int
	for i := range nodes {
		count[nodes[i].plen+1]++
	}
	for l := 1; l < len(count); l++ {
		count[l] += count[l-1]
	}
	order := make([]int32, len(nodes))
	for i := range nodes {
		l := nodes[i].plen
		order[count[l]] = int32(i)
		count[l]++
	}
	// childOf returns the base of the block under an entry, creating it
	// (filled with the entry's leaf) if needed. Entries are addressed by
	// index because creating a block may move d.blocks.
	childOf := func(inL1 bool, idx uint32) uint32 {
		var e uint32
		if inL1 {
			e = d.l1[idx]
		} else {
			e = d.blocks[idx]
		}
		if e&dirChild == 0 {
			n := len(d.blocks)
			b := uint32(n >> 8)
			d.blocks = slices.Grow(d.blocks, 256)[:n+256]
			for i := n; i < n+256; i++ {
				d.blocks[i] = e
			}
			e = dirChild | b
			if inL1 {
				d.l1[idx] = e
			} else {
				d.blocks[idx] = e
			}
		}
		return (e &^ dirChild) << 8
	}
	for _, i := range order {
		nd := &nodes[i]
		v := uint32(i) + 1
		a, plen := nd.addr, int(nd.plen)
		if prev, ok := d.lookup(a); ok {
			nd.parent = prev
		}
		switch {
		case plen <= 16:
			start := a >> 16
			for s := start; s < start+1<<(16-plen); s++ {
				d.l1[s] = v
			}
		case plen <= 24:
			base := childOf(true, a>>16)
			start := (a >> 8) & 0xff
			for s := start; s < start+1<<(24-plen); s++ {
				d.blocks[base|s] = v
			}
		default:
			b2 := childOf(true, a>>16)
			b3 := childOf(false, b2|(a>>8)&0xff)
			start := a & 0xff
			for s := start; s < start+1<<(32-plen); s++ {
				d.blocks[b3|s] = v
			}
		}
	}
	d.blocks = slices.Clip(d.blocks)
	return d
}
