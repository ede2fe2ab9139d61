package fib

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// crule is a compiled policy rule.
type crule struct {
	pref   uint32
	text   string // "from all lookup main" (without the pref), for traces
	invert bool

	iif, oif   int32 // ifindex; -1 when the named device does not exist
	mark, mask uint32
	uidLo      uint32
	uidHi      uint32
	src, dst   pfx128
	tos        uint8
	proto      uint8
	sport      [2]uint16
	dport      [2]uint16
	hasSport   bool
	hasDport   bool
	l3mdev     bool
	tunid      uint64

	action   state.RuleAction
	table    uint32
	t4       *table4
	t6       *table6
	jhead    string // `{"pref":N,"rule":"TEXT"` for JSON traces
	jnoroute string // the whole JSON step for "no route" (lookup rules)
	jroute   string // the JSON step for "route", up to the route text
	gotoIdx  int32  // -1 when unresolved
	gotoPref uint32
	supPlen  int32 // -1: off
	supGroup int64 // -1: off
}

// pfx128 is a prefix in 128-bit form; IPv4 uses the low 32 bits.
type pfx128 struct {
	hi, lo   uint64
	mhi, mlo uint64
	bits     uint8
}

func (p *pfx128) contains(hi, lo uint64) bool {
	return (hi^p.hi)&p.mhi == 0 && (lo^p.lo)&p.mlo == 0
}

// ruleFlow is what rules match on, for both families.
type ruleFlow struct {
	iif, oif   int32
	mark, uid  uint32
	srcHi      uint64
	srcLo      uint64
	dstHi      uint64
	dstLo      uint64
	hasSrc     bool // IPv6 RT6_LOOKUP_F_HAS_SADDR; always true for IPv4
	tos        uint8
	proto      uint8
	sport      uint16
	dport      uint16
	v6         bool
	l3mdevFlow bool
}

type rules struct {
	list []crule
	idx  ruleIndex
	// dflt: exactly the kernel's default rule list (IPv4 fast path).
	dflt bool
}

// ruleIndex lets a lookup visit only rules whose selectors can match.
// Each rule sits in exactly one bucket, chosen by its most selective
// selector; inverted rules and rules without selectors are always
// candidates. Buckets hold rule positions in list order, and the walk
// merges the buckets that apply to a flow, so the kernel's order is kept.
type ruleIndex struct {
	src   []prefixBucket
	dst   []prefixBucket
	marks []markBucket
	iif   map[int32][]int32
	oif   map[int32][]int32
	uid   segIndex
	dport segIndex
	sport segIndex
	proto map[uint8][]int32
	tos   map[uint8][]int32
	scan  []int32
	// cursors is the most buckets one flow can hit.
	cursors int
}

type prefixBucket struct {
	bits     uint8
	mhi, mlo uint64
	m        map[[2]uint64][]int32
	min, max [2]uint64 // key range: most flows miss without a map probe
}

type markBucket struct {
	mask     uint32
	m        map[uint32][]int32
	min, max uint32
}

func less128(a, b [2]uint64) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// segIndex maps a value to the sorted rule positions whose range covers it.
type segIndex struct {
	bp    []uint64 // segment i is [bp[i], bp[i+1])
	lists [][]int32
	rs    [][2]uint64 // build input: ranges
	pos   []int32
}

func (s *segIndex) add(lo, hi uint64, pos int32) {
	s.rs = append(s.rs, [2]uint64{lo, hi})
	s.pos = append(s.pos, pos)
}

func (s *segIndex) build() {
	if len(s.rs) == 0 {
		return
	}
	for _, r := range s.rs {
		s.bp = append(s.bp, r[0], r[1]+1)
	}
	slices.Sort(s.bp)
	s.bp = slices.Compact(s.bp)
	s.lists = make([][]int32, len(s.bp))
	for i, r := range s.rs {
		a, _ := slices.BinarySearch(s.bp, r[0])
		for j := a; j < len(s.bp) && s.bp[j] <= r[1]; j++ {
			s.lists[j] = append(s.lists[j], s.pos[i])
		}
	}
	s.rs, s.pos = nil, nil
}

func (s *segIndex) get(v uint64) []int32 {
	if len(s.bp) == 0 || v < s.bp[0] {
		return nil
	}
	// last breakpoint <= v
	lo, hi := 0, len(s.bp)
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if s.bp[m] <= v {
			lo = m
		} else {
			hi = m
		}
	}
	return s.lists[lo]
}

// buildRules compiles both families' rule lists and their indexes.
func (f *FIB) buildRules(s *state.State) error {
	var r4, r6 []state.Rule
	for i := range s.Rules {
		switch s.Rules[i].Family {
		case 4:
			r4 = append(r4, s.Rules[i])
		case 6:
			r6 = append(r6, s.Rules[i])
		default:
			return fmt.Errorf("fib: rules[%d]: family must be 4 or 6", i)
		}
	}
	if len(r4) == 0 {
		r4 = defaultRules(4)
		f.assumedRules = append(f.assumedRules, "the snapshot has no IPv4 rules; assumed the kernel's defaults")
	}
	if len(r6) == 0 {
		r6 = defaultRules(6)
		f.assumedRules = append(f.assumedRules, "the snapshot has no IPv6 rules; assumed the kernel's defaults")
	}
	var err error
	if f.v4.rules, err = f.compileRules(r4, false); err != nil {
		return err
	}
	if f.v6.rules, err = f.compileRules(r6, true); err != nil {
		return err
	}
	if defaultSubset(r6, 6) {
		// Only deletions: the kernel has not started walking rules.
		walked := f.v6.rules
		f.v6.walked = &walked
		if f.v6.rules, err = f.compileRules(defaultRules(6), true); err != nil {
			return err
		}
		for i := range f.v6.rules.list {
			f.v6.rules.list[i].text += " (the kernel's fast path: no IPv6 rule was ever added)"
		}
	}
	f.v4.rules.dflt = isDefault4(r4)
	for i := range r4 {
		r := &r4[i]
		if (r.IPProto != 0 || r.SPort != nil || r.DPort != nil) && r.IIF != "lo" {
			f.ruleDissect4 = true
		}
	}
	f.maxCursors = max(f.v4.rules.idx.cursors, f.v6.rules.idx.cursors)
	return nil
}

func defaultRules(fam int) []state.Rule {
	mk := func(pref, table uint32) state.Rule {
		r := state.NewRule(fam)
		r.Priority, r.Table = pref, table
		return r
	}
	if fam == 4 {
		return []state.Rule{mk(0, state.TableLocal), mk(32766, state.TableMain), mk(32767, state.TableDefault)}
	}
	return []state.Rule{mk(0, state.TableLocal), mk(32766, state.TableMain)}
}

// defaultSubset reports whether rs are some of the kernel's default rules
// of family fam, but not all: what deleting default rules leaves.
func defaultSubset(rs []state.Rule, fam int) bool {
	want := defaultRules(fam)
	if len(rs) >= len(want) {
		return false
	}
	j := 0
	for i := range rs {
		a := rs[i]
		if a.SPort != nil || a.DPort != nil || a.UID != nil {
			return false
		}
		for j < len(want) {
			b := want[j]
			j++
			a.Protocol = b.Protocol
			if a == b {
				goto next
			}
		}
		return false
	next:
	}
	return true
}

// isDefault4 reports whether the IPv4 rules are exactly the kernel's
// three default rules.
func isDefault4(rs []state.Rule) bool {
	want := defaultRules(4)
	if len(rs) != len(want) {
		return false
	}
	for i := range rs {
		a, b := rs[i], want[i]
		if a.SPort != nil || a.DPort != nil || a.UID != nil {
			return false
		}
		a.Protocol = b.Protocol
		if a.Mark == 0 && a.Mask == 0 {
			a.Mask = 0
		}
		if a != b {
			return false
		}
	}
	return true
}

func (f *FIB) compileRules(rs []state.Rule, v6 bool) (rules, error) {
	out := rules{list: make([]crule, len(rs))}
	for i := range rs {
		r := &rs[i]
		c := &out.list[i]
		c.pref = r.Priority
		c.text = ruleText(r)
		c.jhead = `{"pref":` + strconv.FormatUint(uint64(r.Priority), 10) + `,"rule":` + string(appendJSONString(nil, c.text))
		if r.Action == state.ActionLookup {
			tn := `,"table":"` + string(appendTableName(nil, r.Table)) + `"`
			c.jnoroute = c.jhead + `,"verdict":"no route"` + tn + `}`
			c.jroute = c.jhead + `,"verdict":"route"` + tn + `,"route":"`
		}
		c.invert = r.Invert
		if r.IIF != "" {
			c.iif = -1
			if l := f.byName[r.IIF]; l != nil && !r.IIFDetached {
				c.iif = int32(l.index)
			}
		}
		if r.OIF != "" {
			c.oif = -1
			if l := f.byName[r.OIF]; l != nil && !r.OIFDetached {
				c.oif = int32(l.index)
			}
		}
		c.mark, c.mask = r.Mark, r.Mask
		if c.mark != 0 && c.mask == 0 {
			c.mask = 0xffffffff
		}
		c.uidLo, c.uidHi = 0, 0xffffffff
		if r.UID != nil {
			c.uidLo, c.uidHi = r.UID.Start, r.UID.End
		}
		var err error
		if c.src, err = toPfx128(r.Src, v6); err != nil {
			return out, fmt.Errorf("fib: rule pref %d: from %s: %w", r.Priority, r.Src, err)
		}
		if c.dst, err = toPfx128(r.Dst, v6); err != nil {
			return out, fmt.Errorf("fib: rule pref %d: to %s: %w", r.Priority, r.Dst, err)
		}
		c.tos = r.TOS
		c.proto = r.IPProto
		if r.SPort != nil && (r.SPort.Start != 0 || r.SPort.End != 0) {
			c.hasSport, c.sport = true, [2]uint16{r.SPort.Start, r.SPort.End}
		}
		if r.DPort != nil && (r.DPort.Start != 0 || r.DPort.End != 0) {
			c.hasDport, c.dport = true, [2]uint16{r.DPort.Start, r.DPort.End}
		}
		c.l3mdev = r.L3MDev
		c.tunid = r.TunID
		c.action = r.Action
		c.table = r.Table
		if r.Action == state.ActionLookup {
			if v6 {
				c.t6 = f.v6.tables[r.Table]
			} else {
				c.t4 = f.v4.tables[r.Table]
			}
		}
		c.gotoIdx = -1
		c.gotoPref = r.Goto
		if r.Action == state.ActionGoto && !r.Unresolved {
			for j := i + 1; j < len(rs); j++ {
				if rs[j].Priority == r.Goto {
					c.gotoIdx = int32(j)
					break
				}
			}
		}
		c.supPlen = int32(r.SuppressPrefixLen)
		c.supGroup = int64(r.SuppressIfGroup)
		if c.supGroup < -1 {
			c.supGroup = int64(uint32(r.SuppressIfGroup))
		}
	}
	out.idx = buildIndex(out.list)
	return out, nil
}

func toPfx128(np netip.Prefix, v6 bool) (pfx128, error) {
	var out pfx128
	if !np.IsValid() {
		return out, nil
	}
	a := np.Addr()
	if a.Is4() == v6 {
		return out, fmt.Errorf("wrong address family")
	}
	bits := np.Bits()
	if bits == 0 {
		return out, nil
	}
	out.bits = uint8(bits)
	if v6 {
		out.hi, out.lo = split6(a)
		out.mhi, out.mlo = mask6(bits)
	} else {
		out.lo = uint64(v4u(a))
		out.mlo = uint64(mask4(bits))
	}
	out.hi &= out.mhi
	out.lo &= out.mlo
	return out, nil
}

// ruleText renders a rule the way `ip rule` lists it, without the pref.
func ruleText(r *state.Rule) string {
	var b strings.Builder
	if r.Invert {
		b.WriteString("not ")
	}
	b.WriteString("from ")
	writeSel := func(p netip.Prefix) {
		if p.IsSingleIP() {
			b.WriteString(p.Addr().String())
		} else {
			b.WriteString(p.String())
		}
	}
	if r.Src.IsValid() && r.Src.Bits() > 0 {
		writeSel(r.Src)
	} else {
		b.WriteString("all")
	}
	if r.Dst.IsValid() && r.Dst.Bits() > 0 {
		b.WriteString(" to ")
		writeSel(r.Dst)
	}
	r.WriteTOSMark(&b)
	if r.IIF != "" {
		b.WriteString(" iif " + r.IIF)
		if r.IIFDetached {
			b.WriteString(" [detached]")
		}
	}
	if r.OIF != "" {
		b.WriteString(" oif " + r.OIF)
		if r.OIFDetached {
			b.WriteString(" [detached]")
		}
	}
	if r.UID != nil {
		fmt.Fprintf(&b, " uidrange %d-%d", r.UID.Start, r.UID.End)
	}
	if r.IPProto != 0 {
		switch r.IPProto {
		case protoTCP:
			b.WriteString(" ipproto tcp")
		case protoUDP:
			b.WriteString(" ipproto udp")
		case protoICMP:
			b.WriteString(" ipproto icmp")
		case protoICMPv6:
			b.WriteString(" ipproto ipv6-icmp")
		default:
			fmt.Fprintf(&b, " ipproto %d", r.IPProto)
		}
	}
	state.WritePorts(&b, "sport", r.SPort)
	state.WritePorts(&b, "dport", r.DPort)
	if r.TunID != 0 {
		fmt.Fprintf(&b, " tun_id %d", r.TunID)
	}
	if r.L3MDev {
		b.WriteString(" lookup [l3mdev-table]")
	}
	switch r.Action {
	case state.ActionLookup:
		if !r.L3MDev {
			b.WriteString(" lookup " + tableName(r.Table))
		}
	case state.ActionGoto:
		fmt.Fprintf(&b, " goto %d", r.Goto)
		if r.Unresolved {
			b.WriteString(" [unresolved]")
		}
	case state.ActionNop:
		b.WriteString(" nop")
	default:
		b.WriteString(" " + r.Action.String())
	}
	if r.SuppressPrefixLen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixLen)
	}
	if r.SuppressIfGroup >= 0 {
		if r.SuppressIfGroup == 0 {
			b.WriteString(" suppress_ifgroup default")
		} else {
			fmt.Fprintf(&b, " suppress_ifgroup %d", r.SuppressIfGroup)
		}
	}
	return b.String()
}

func buildIndex(list []crule) ruleIndex {
	var ix ruleIndex
	ix.iif = map[int32][]int32{}
	ix.oif = map[int32][]int32{}
	ix.proto = map[uint8][]int32{}
	ix.tos = map[uint8][]int32{}
	srcB := map[uint8]int{}
	dstB := map[uint8]int{}
	markB := map[uint32]int{}
	addPfx := func(bs *[]prefixBucket, byLen map[uint8]int, p pfx128, pos int32) {
		i, ok := byLen[p.bits]
		if !ok {
			i = len(*bs)
			byLen[p.bits] = i
			*bs = append(*bs, prefixBucket{bits: p.bits, mhi: p.mhi, mlo: p.mlo, m: map[[2]uint64][]int32{}})
		}
		k := [2]uint64{p.hi, p.lo}
		b := &(*bs)[i]
		if len(b.m) == 0 || less128(k, b.min) {
			b.min = k
		}
		if len(b.m) == 0 || less128(b.max, k) {
			b.max = k
		}
		b.m[k] = append(b.m[k], pos)
	}
	for i := range list {
		r := &list[i]
		pos := int32(i)
		switch {
		case r.invert:
			ix.scan = append(ix.scan, pos)
		case r.iif < 0 || r.oif < 0 || r.l3mdev || r.tunid != 0:
			// never matches (detached device, no VRF, no tunnel key);
			// still reachable as a goto target, where it is checked.
		case r.src.bits > 0:
			addPfx(&ix.src, srcB, r.src, pos)
		case r.dst.bits > 0:
			addPfx(&ix.dst, dstB, r.dst, pos)
		case r.mask != 0:
			j, ok := markB[r.mask]
			if !ok {
				j = len(ix.marks)
				markB[r.mask] = j
				ix.marks = append(ix.marks, markBucket{mask: r.mask, m: map[uint32][]int32{}})
			}
			mb := &ix.marks[j]
			v := r.mark & r.mask
			if len(mb.m) == 0 || v < mb.min {
				mb.min = v
			}
			if len(mb.m) == 0 || v > mb.max {
				mb.max = v
			}
			mb.m[v] = append(mb.m[v], pos)
		case r.oif > 0:
			ix.oif[r.oif] = append(ix.oif[r.oif], pos)
		case r.iif > 0:
			ix.iif[r.iif] = append(ix.iif[r.iif], pos)
		case r.uidLo != 0 || r.uidHi != 0xffffffff:
			ix.uid.add(uint64(r.uidLo), uint64(r.uidHi), pos)
		case r.hasDport:
			ix.dport.add(uint64(r.dport[0]), uint64(r.dport[1]), pos)
		case r.hasSport:
			ix.sport.add(uint64(r.sport[0]), uint64(r.sport[1]), pos)
		case r.proto != 0:
			ix.proto[r.proto] = append(ix.proto[r.proto], pos)
		case r.tos != 0:
			ix.tos[r.tos] = append(ix.tos[r.tos], pos)
		default:
			ix.scan = append(ix.scan, pos)
		}
	}
	ix.uid.build()
	ix.dport.build()
	ix.sport.build()
	ix.cursors = len(ix.src) + len(ix.dst) + len(ix.marks) + 9
	return ix
}

// appendAddrBuckets appends to cur the rule lists of the buckets in bs
// whose prefix holds the address hi:lo.
func appendAddrBuckets(cur [][]int32, bs []prefixBucket, hi, lo uint64) [][]int32 {
	for i := range bs {
		b := &bs[i]
		k := [2]uint64{hi & b.mhi, lo & b.mlo}
		if less128(k, b.min) || less128(b.max, k) {
			continue
		}
		if l := b.m[k]; l != nil {
			cur = append(cur, l)
		}
	}
	return cur
}

// collect appends to cur the buckets that may match fl.
func (ix *ruleIndex) collect(fl *ruleFlow, cur [][]int32) [][]int32 {
	if len(ix.scan) > 0 {
		cur = append(cur, ix.scan)
	}
	if fl.hasSrc {
		cur = appendAddrBuckets(cur, ix.src, fl.srcHi, fl.srcLo)
	}
	cur = appendAddrBuckets(cur, ix.dst, fl.dstHi, fl.dstLo)
	for i := range ix.marks {
		b := &ix.marks[i]
		v := fl.mark & b.mask
		if v < b.min || v > b.max {
			continue
		}
		if l := b.m[v]; l != nil {
			cur = append(cur, l)
		}
	}
	if len(ix.oif) > 0 && fl.oif != 0 {
		if l := ix.oif[fl.oif]; l != nil {
			cur = append(cur, l)
		}
	}
	if len(ix.iif) > 0 {
		if l := ix.iif[fl.iif]; l != nil {
			cur = append(cur, l)
		}
	}
	if l := ix.uid.get(uint64(fl.uid)); l != nil {
		cur = append(cur, l)
	}
	if l := ix.dport.get(uint64(fl.dport)); l != nil {
		cur = append(cur, l)
	}
	if l := ix.sport.get(uint64(fl.sport)); l != nil {
		cur = append(cur, l)
	}
	if len(ix.proto) > 0 && fl.proto != 0 {
		if l := ix.proto[fl.proto]; l != nil {
			cur = append(cur, l)
		}
	}
	if len(ix.tos) > 0 {
		t := fl.tos & 0x1c
		if fl.v6 {
			t = fl.tos & 0xfc
		}
		if l := ix.tos[t]; l != nil {
			cur = append(cur, l)
		}
	}
	return cur
}

// nextCandidate returns the smallest position >= pos among the cursors,
// advancing them, or -1.
func nextCandidate(cur [][]int32, pos int32) int32 {
	best := int32(-1)
	for i := range cur {
		c := cur[i]
		for len(c) > 0 && c[0] < pos {
			c = c[1:]
		}
		cur[i] = c
		if len(c) > 0 && (best < 0 || c[0] < best) {
			best = c[0]
		}
	}
	return best
}

// match is fib_rule_match plus the family's match, inverted by "not".
func (r *crule) match(fl *ruleFlow) bool {
	return r.match0(fl) != r.invert
}

func (r *crule) match0(fl *ruleFlow) bool {
	if r.iif != 0 && r.iif != fl.iif {
		return false
	}
	if r.oif != 0 && r.oif != fl.oif {
		return false
	}
	if (r.mark^fl.mark)&r.mask != 0 {
		return false
	}
	if r.tunid != 0 {
		return false
	}
	if r.l3mdev && !fl.l3mdevFlow {
		return false
	}
	if fl.uid < r.uidLo || fl.uid > r.uidHi {
		return false
	}
	if !fl.v6 {
		if !r.src.contains(0, fl.srcLo) || !r.dst.contains(0, fl.dstLo) {
			return false
		}
		if r.tos != 0 && r.tos != fl.tos&0x1c {
			return false
		}
	} else {
		if r.dst.bits > 0 && !r.dst.contains(fl.dstHi, fl.dstLo) {
			return false
		}
		if r.src.bits > 0 && (!fl.hasSrc || !r.src.contains(fl.srcHi, fl.srcLo)) {
			return false
		}
		if r.tos != 0 && r.tos != fl.tos&0xfc {
			return false
		}
	}
	if r.proto != 0 && r.proto != fl.proto {
		return false
	}
	if r.hasSport && (fl.sport < r.sport[0] || fl.sport > r.sport[1]) {
		return false
	}
	if r.hasDport && (fl.dport < r.dport[0] || fl.dport > r.dport[1]) {
		return false
	}
	return true
}

func (r *crule) String() string { return strconv.FormatUint(uint64(r.pref), 10) + ": " + r.text }
