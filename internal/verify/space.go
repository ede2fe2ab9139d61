package verify

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// stateTable names one routing table of one state of a space.
type stateTable struct {
	state int
	table uint32
}

// cube is a product of atom sets, one per dimension: a set of packets
// (all destinations) that the refinement keeps or splits as a whole.
type cube [nDims]bitset

// space is the packet space of one family cut into cells: cubes times
// destination groups, each cell one class of packets no rule, route,
// firewall rule or property tells apart.
type space struct {
	fam                                 int
	src, proto, sport, dport, icmp, uid *ivAtoms
	mark                                *markAtoms
	cgroup, iif                         nameAtoms
	cubes                               []cube
	groups                              []group
	// cubeSets are the cube lists; group i is cut by cubeSets[groupSet[i]].
	// A single state cuts each destination group only along the rules its
	// packets can reach (see relevantRules); several states share one cut.
	cubeSets [][]cube
	groupSet []int
	// layerOfTable: the destination-map layer of each routing table (a
	// single state), and chainTerminal whether a chain ends the rule walk.
	layerOfTable map[stateTable]int
	chains       *chainTable
	// localSrc marks the src atoms that are one of this host's addresses.
	localSrc map[int]bool
}

// maxCubes bounds the refinement: a policy that needs more is refused
// with an error rather than exhausting memory.
const maxCubes = 4 << 20

var portProtos = []uint8{6, 17, 33, 132, 136}

func specials(fam int) []netip.Prefix {
	var ss []string
	if fam == 4 {
		ss = []string{"0.0.0.0/8", "0.0.0.0/32", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "224.0.0.0/24", "224.0.0.1/32", "255.255.255.255/32", "240.0.0.0/4"}
	} else {
		ss = []string{"::/128", "::1/128", "::ffff:0:0/96", "fe80::/10", "ff00::/8", "ff02::/16", "ff02::1/128"}
	}
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// familyMatch restricts m to one family; ok is false when it then holds
// for nothing.
func familyMatch(m Match, fam int) (Match, bool) {
	if m.Family != 0 && m.Family != fam {
		return m, false
	}
	var ok bool
	if m.Src, ok = ofFamily(m.Src, fam); !ok {
		return m, false
	}
	if m.Dst, ok = ofFamily(m.Dst, fam); !ok {
		return m, false
	}
	m.NotDst, _ = ofFamily(m.NotDst, fam)
	return m, true
}

// stateMatches are the packet sets a state's rules and firewall test.
func stateMatches(st *state.State) (ms []Match, setMarks []markPred) {
	for i := range st.Rules {
		ms = append(ms, ruleMatch(&st.Rules[i]))
	}
	if st.Firewall != nil {
		for ci := range st.Firewall.Chains {
			for ri := range st.Firewall.Chains[ci].Rules {
				r := &st.Firewall.Chains[ci].Rules[ri]
				ms = append(ms, fwMatch(r))
				if r.SetMarkMask != 0 {
					setMarks = append(setMarks, markPred{mask: r.SetMarkMask, val: r.SetMark})
				}
			}
		}
	}
	return ms, setMarks
}

func buildSpace(fam int, states []*state.State, extra []Match) (*space, error) {
	s := &space{fam: fam, localSrc: map[int]bool{}}
	var all []Match
	var setMarks []markPred
	// ruleOf[i] is the rule match i comes from (numbered across the
	// states, ruleBase[k] being state k's first), -1 for everything else.
	var ruleOf, ruleBase []int
	nrules := 0
	for _, st := range states {
		ms, sm := stateMatches(st)
		ruleBase = append(ruleBase, nrules)
		for i := range ms {
			r := -1
			if i < len(st.Rules) {
				r = nrules + i
			}
			ruleOf = append(ruleOf, r)
		}
		nrules += len(st.Rules)
		all = append(all, ms...)
		setMarks = append(setMarks, sm...)
	}
	all = append(all, extra...)
	all = append(all, shapeCuts(states)...)
	// The kernel looks at what a source is (one of this host's addresses,
	// loopback, broadcast, multicast, zero...) before any rule: the space
	// is cut along those too.
	for _, p := range specials(fam) {
		all = append(all, Match{Src: []netip.Prefix{p}})
	}
	for _, st := range states {
		for _, a := range st.Addrs {
			all = append(all, Match{Src: []netip.Prefix{netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Addr().BitLen())}},
				Match{Src: []netip.Prefix{a.Prefix.Masked()}})
		}
		for _, r := range st.Routes {
			if r.Table == 255 && r.Dst.IsValid() {
				all = append(all, Match{Src: []netip.Prefix{r.Dst}})
			}
		}
		// The reverse-path filter looks a forwarded packet's source up in
		// the routes: with it on, sources are cut along them too (when
		// there are few enough; a big table leaves that to the example).
		if rpFilter(st) && len(st.Routes) < 20000 {
			seen := map[netip.Prefix]bool{}
			var ps []netip.Prefix
			for _, r := range st.Routes {
				ps = append(ps, r.Dst)
			}
			for _, r := range st.Rules {
				ps = append(ps, r.Dst) // the reverse lookup walks the rules with the source as destination
			}
			for _, p := range ps {
				if p.IsValid() && p.Bits() > 0 && !seen[p] {
					seen[p] = true
					all = append(all, Match{Forwarded: true, Src: []netip.Prefix{p}})
				}
			}
			// ... and must come back by the device it came in on.
			for _, l := range st.Links {
				all = append(all, Match{Forwarded: true, IIF: []string{l.Name}})
			}
		}
	}
	for len(ruleOf) < len(all) {
		ruleOf = append(ruleOf, -1)
	}
	var ms []Match
	var msRule []int
	for i, m := range all {
		if fm, ok := familyMatch(m, fam); ok {
			ms = append(ms, fm)
			msRule = append(msRule, ruleOf[i])
		}
	}

	src := newIvBuilder(maxAddr(fam))
	proto := newIvBuilder(small(255))
	sport, dport := newIvBuilder(small(65535)), newIvBuilder(small(65535))
	icmp := newIvBuilder(small(255))
	uid := newIvBuilder(small(0xffffffff))
	var marks []markPred
	s.cgroup.names = []string{""}
	s.iif.names = []string{"lo"}
	addName := func(a *nameAtoms, n string) {
		if n != "" && !slices.Contains(a.names, n) {
			a.names = append(a.names, n)
		}
	}
	addRanges := func(b *ivBuilder, ps []state.PortRange) {
		for _, r := range ps {
			b.add(small(uint64(r.Start)), small(uint64(r.End)))
		}
	}
	src.point(u128{})
	for _, p := range specials(fam) {
		src.add(prefixRange(p))
	}
	var locals []u128
	for _, st := range states {
		for _, a := range st.Addrs {
			if a.Prefix.Addr().Is4() != (fam == 4) {
				continue
			}
			v := addrU(a.Prefix.Addr())
			src.point(v)
			locals = append(locals, v)
			src.add(prefixRange(a.Prefix.Masked()))
		}
		for _, r := range st.Routes {
			if r.Src.IsValid() && r.Src.Addr().Is4() == (fam == 4) {
				src.add(prefixRange(r.Src))
			}
		}
		for _, l := range st.Links {
			if l.Name != "lo" {
				addName(&s.iif, l.Name)
			}
		}
	}
	for _, v := range []uint64{0, 1, 6, 17, 33, 58, 132, 136} {
		proto.point(small(v))
	}
	for _, v := range []uint64{0, 8, 128} {
		icmp.point(small(v))
	}
	sport.point(u128{})
	dport.point(u128{})
	uid.point(u128{})
	for _, m := range ms {
		for _, p := range m.Src {
			src.add(prefixRange(p))
		}
		for _, p := range m.Protos {
			proto.point(small(uint64(p)))
		}
		addRanges(sport, m.SPorts)
		addRanges(dport, m.DPorts)
		for _, t := range m.ICMP {
			icmp.point(small(uint64(t)))
		}
		if m.UID != nil {
			uid.add(small(uint64(m.UID.Start)), small(uint64(m.UID.End)))
		}
		if m.MarkMask != 0 {
			marks = append(marks, markPred{mask: m.MarkMask, val: m.Mark})
		}
		addName(&s.cgroup, m.Cgroup)
		for _, n := range m.IIF {
			addName(&s.iif, n)
		}
		for _, n := range m.NotIIF {
			addName(&s.iif, n)
		}
	}
	// A mark statement changes the mark before the packet is routed
	// again: the predicates must also hold or fail alike after it.
	base := append([]markPred(nil), marks...)
	for _, t := range setMarks {
		for _, p := range base {
			if t.val&p.mask&t.mask != p.val&t.mask {
				continue
			}
			if mask := p.mask &^ t.mask; mask != 0 {
				marks = append(marks, markPred{mask: mask, val: p.val &^ t.mask})
			}
		}
	}
	s.src, s.proto, s.sport, s.dport, s.icmp, s.uid = src.build(), proto.build(), sport.build(), dport.build(), icmp.build(), uid.build()
	s.mark = newMarkAtoms(marks)
	for _, v := range locals {
		s.localSrc[s.src.index(v)] = true
	}
	s.initialCubes()
	initial := s.cubes
	// The predicates, each once; a predicate is relevant to every
	// destination (global) unless only rules make it.
	var preds []cube
	var predRules [][]int
	var global []bool
	byKey := map[string]int{}
	for i := range ms {
		p, ok := s.pred(&ms[i])
		if !ok {
			continue
		}
		k := p.key()
		j, seen := byKey[k]
		if !seen {
			j = len(preds)
			byKey[k] = j
			preds = append(preds, p)
			predRules = append(predRules, nil)
			global = append(global, false)
		}
		if msRule[i] < 0 {
			global[j] = true
		} else {
			predRules[j] = append(predRules[j], msRule[i])
		}
	}
	s.buildGroups(states, ms)
	cut := func(use func(j int) bool) ([]cube, error) {
		s.cubes = initial
		for j := range preds {
			if !use(j) {
				continue
			}
			s.refine(&preds[j])
			if len(s.cubes) > maxCubes {
				return nil, fmt.Errorf("verify: the policy cuts the IPv%d packet space into more than %d classes", fam, maxCubes)
			}
		}
		return s.cubes, nil
	}
	s.groupSet = make([]int, len(s.groups))
	sets := map[string]int{}
	for gi := range s.groups {
		rel := map[int]bool{}
		for k, st := range states {
			for r := range s.relevantRules(k, st, &s.groups[gi]) {
				rel[ruleBase[k]+r] = true
			}
		}
		use := func(j int) bool {
			if global[j] {
				return true
			}
			for _, r := range predRules[j] {
				if rel[r] {
					return true
				}
			}
			return false
		}
		var key []byte
		for j := range preds {
			if use(j) {
				key = binary.LittleEndian.AppendUint32(key, uint32(j))
			}
		}
		set, ok := sets[string(key)]
		if !ok {
			cubes, err := cut(use)
			if err != nil {
				return nil, err
			}
			set = len(s.cubeSets)
			sets[string(key)] = set
			s.cubeSets = append(s.cubeSets, cubes)
		}
		s.groupSet[gi] = set
	}
	s.cubes = nil
	return s, nil
}

// cubesFor are the cubes destination group gi is cut into: along the
// rules its packets can reach in some state, and everything else.
func (s *space) cubesFor(gi int) []cube { return s.cubeSets[s.groupSet[gi]] }

// relevantRules are the rules of st the packets to group g can reach: in
// list order, those whose destination holds g, up to the first that
// selects nothing else and ends the walk for all of them (a lookup in a
// table whose route for g is final, or a blackhole, unreachable or
// prohibit rule). The rules after it cannot change these packets' fate,
// so their selectors need not cut the space for g. When in doubt a rule
// does not end the walk: the cut is then only finer.
func (s *space) relevantRules(k int, st *state.State, g *group) map[int]bool {
	rel := map[int]bool{}
	at := uAddr(g.ivs[0][0], s.fam)
	for i := range st.Rules {
		r := &st.Rules[i]
		if r.Family != s.fam {
			continue
		}
		if r.Dst.IsValid() && r.Dst.Bits() > 0 && !r.Dst.Contains(at) {
			continue
		}
		rel[i] = true
		if r.Invert || r.Src.IsValid() && r.Src.Bits() > 0 || r.IIF != "" || r.OIF != "" || r.Mark != 0 || r.Mask != 0 ||
			r.TOS != 0 || r.IPProto != 0 || r.SPort != nil || r.DPort != nil || r.UID != nil || r.L3MDev || r.TunID != 0 ||
			r.SuppressPrefixLen >= 0 || r.SuppressIfGroup >= 0 {
			continue
		}
		switch r.Action {
		case state.ActionBlackhole, state.ActionUnreachable, state.ActionProhibit:
			return rel
		case state.ActionLookup:
			if l, ok := s.layerOfTable[stateTable{k, r.Table}]; ok && s.chains.terminal[g.ids[l]] {
				return rel
			}
		}
	}
	return rel
}

func (c *cube) key() string {
	var b []byte
	for _, s := range c {
		if s == nil {
			b = append(b, 0xff)
			continue
		}
		b = append(b, s.key()...)
		b = append(b, 0xfe)
	}
	return string(b)
}

func (s *space) dimSize(d int) int {
	switch d {
	case dSrc:
		return s.src.n()
	case dProto:
		return s.proto.n()
	case dSPort:
		return s.sport.n()
	case dDPort:
		return s.dport.n()
	case dICMP:
		return s.icmp.n()
	case dUID:
		return s.uid.n()
	case dMark:
		return s.mark.n()
	case dCgroup:
		return len(s.cgroup.names)
	}
	return len(s.iif.names)
}

func (s *space) points(a *ivAtoms, vs ...uint64) bitset {
	b := newBitset(a.n())
	for _, v := range vs {
		b.set(a.index(small(v)))
	}
	return b
}

// initialCubes: the traffic this host sends (from no address or one of
// its own, any uid, cgroup and mark) and the traffic it forwards (any
// source, from any device, no socket, mark 0); ports only for protocols
// that have them, ICMP types only for ICMP.
func (s *space) initialCubes() {
	full := func(d int) bitset { return fullBitset(s.dimSize(d)) }
	icmpProto := uint64(1)
	if s.fam == 6 {
		icmpProto = 58
	}
	portSet := s.points(s.proto, 6, 17, 33, 132, 136)
	icmpSet := s.points(s.proto, icmpProto)
	otherSet := full(dProto).andNot(portSet).andNot(icmpSet)
	zero := func(a *ivAtoms) bitset { return s.points(a, 0) }
	localSrc := newBitset(s.src.n())
	localSrc.set(s.src.index(u128{}))
	for i := range s.localSrc {
		localSrc.set(i)
	}
	lo := newBitset(len(s.iif.names))
	lo.set(0)
	fwd := full(dIIF).andNot(lo)
	for _, local := range []bool{true, false} {
		for k := 0; k < 3; k++ {
			var c cube
			for d := range nDims {
				c[d] = full(d)
			}
			switch k {
			case 0:
				c[dProto], c[dICMP] = portSet, zero(s.icmp)
			case 1:
				c[dProto], c[dSPort], c[dDPort] = icmpSet, zero(s.sport), zero(s.dport)
			case 2:
				c[dProto], c[dSPort], c[dDPort], c[dICMP] = otherSet, zero(s.sport), zero(s.dport), zero(s.icmp)
			}
			if local {
				c[dSrc], c[dIIF] = localSrc, lo
			} else {
				c[dIIF], c[dUID] = fwd, zero(s.uid)
				c[dMark] = newBitset(s.mark.n())
				c[dMark].set(s.mark.atom(0))
				c[dCgroup] = newBitset(len(s.cgroup.names))
				c[dCgroup].set(0)
			}
			if c[dProto].empty() || c[dIIF].empty() {
				continue
			}
			s.cubes = append(s.cubes, c)
		}
	}
}

// pred is m as a cube (nil: any value of that dimension).
func (s *space) pred(m *Match) (cube, bool) {
	var p cube
	lo := newBitset(len(s.iif.names))
	lo.set(0)
	restrictIIF := func(b bitset) {
		if p[dIIF] == nil {
			p[dIIF] = fullBitset(len(s.iif.names))
		}
		p[dIIF] = p[dIIF].and(b)
	}
	if len(m.Src) > 0 {
		p[dSrc] = newBitset(s.src.n())
		for _, pf := range m.Src {
			lo, hi := prefixRange(pf)
			s.src.set(p[dSrc], lo, hi)
		}
	}
	if len(m.Protos) > 0 {
		p[dProto] = newBitset(s.proto.n())
		for _, v := range m.Protos {
			p[dProto].set(s.proto.index(small(uint64(v))))
		}
	}
	ports := func(a *ivAtoms, ps []state.PortRange) bitset {
		b := newBitset(a.n())
		for _, r := range ps {
			a.set(b, small(uint64(r.Start)), small(uint64(r.End)))
		}
		return b
	}
	if len(m.SPorts) > 0 || len(m.DPorts) > 0 {
		pp := s.points(s.proto, 6, 17, 33, 132, 136)
		if p[dProto] == nil {
			p[dProto] = pp
		} else {
			p[dProto] = p[dProto].and(pp)
		}
		if len(m.SPorts) > 0 {
			p[dSPort] = ports(s.sport, m.SPorts)
		}
		if len(m.DPorts) > 0 {
			p[dDPort] = ports(s.dport, m.DPorts)
		}
	}
	if len(m.ICMP) > 0 {
		p[dICMP] = newBitset(s.icmp.n())
		for _, t := range m.ICMP {
			p[dICMP].set(s.icmp.index(small(uint64(t))))
		}
	}
	if m.UID != nil {
		p[dUID] = newBitset(s.uid.n())
		s.uid.set(p[dUID], small(uint64(m.UID.Start)), small(uint64(m.UID.End)))
		restrictIIF(lo)
	}
	if m.MarkMask != 0 {
		p[dMark] = s.mark.matching(m.MarkMask, m.Mark)
	}
	if m.Cgroup != "" {
		p[dCgroup] = s.cgroup.cgroupSet(m.Cgroup)
		restrictIIF(lo)
	}
	if len(m.IIF) > 0 {
		b := newBitset(len(s.iif.names))
		for _, n := range m.IIF {
			if i := s.iif.index(n); i >= 0 {
				b.set(i)
			}
		}
		restrictIIF(b)
	}
	if len(m.NotIIF) > 0 {
		not := newBitset(len(s.iif.names))
		for _, n := range m.NotIIF {
			if i := s.iif.index(n); i >= 0 {
				not.set(i)
			}
		}
		restrictIIF(fullBitset(len(s.iif.names)).andNot(not))
	}
	if m.Local {
		restrictIIF(lo)
	}
	if m.Forwarded {
		restrictIIF(fullBitset(len(s.iif.names)).andNot(lo))
	}
	for _, b := range p {
		if b != nil && b.empty() {
			return p, false
		}
	}
	return p, true
}

// refine splits every cube that p cuts into the part inside p and the
// parts outside it.
func (s *space) refine(p *cube) {
	out := s.cubes[:0:0]
	for _, c := range s.cubes {
		inside, disjoint := true, false
		for d := range nDims {
			if p[d] == nil {
				continue
			}
			x := c[d].and(p[d])
			if x.empty() {
				disjoint = true
				break
			}
			if !c[d].subsetOf(p[d]) {
				inside = false
			}
		}
		if disjoint || inside {
			out = append(out, c)
			continue
		}
		cur := c
		for d := range nDims {
			if p[d] == nil {
				continue
			}
			if rest := cur[d].andNot(p[d]); !rest.empty() {
				piece := cur
				piece[d] = rest
				out = append(out, piece)
			}
			cur[d] = cur[d].and(p[d])
		}
		out = append(out, cur)
	}
	s.cubes = out
}

// buildGroups cuts the destinations: one layer per routing table of each
// state, one for every prefix a match or an address names.
func (s *space) buildGroups(states []*state.State, ms []Match) {
	max := maxAddr(s.fam)
	chains := newChainTable()
	s.chains = chains
	s.layerOfTable = map[stateTable]int{}
	var layers [][]seg
	addLayer := func(entries []layerEntry) int {
		segs := layer(entries, max, chains)
		for i, l := range layers {
			if slices.Equal(l, segs) {
				return i
			}
		}
		layers = append(layers, segs)
		return len(layers) - 1
	}
	up := map[string]bool{}
	for _, st := range states {
		for _, l := range st.Links {
			up[l.Name] = l.Up
		}
	}
	// final: a route that ends a lookup for every packet it matches.
	final := func(r *state.Route) bool {
		if r.TOS != 0 || r.Src.IsValid() && r.Src.Bits() > 0 {
			return false
		}
		switch r.Type {
		case state.RouteBlackhole, state.RouteUnreachable, state.RouteProhibit, state.RouteLocal, state.RouteBroadcast:
			return true
		case state.RouteUnicast:
			return len(r.Nexthops) == 1 && up[r.Nexthops[0].Dev]
		}
		return false
	}
	keys := map[routeKey]string{}
	// A prefix's length matters to the decision only through
	// suppress_prefixlength: without it, a /24 and a /16 of the same
	// route are one group.
	withBits := false
	for _, st := range states {
		for _, r := range st.Rules {
			if r.SuppressPrefixLen >= 0 {
				withBits = true
			}
		}
	}
	for k, st := range states {
		byTable := map[uint32][]layerEntry{}
		for i := range st.Routes {
			r := &st.Routes[i]
			if r.Dst.Addr().Is4() != (s.fam == 4) {
				continue
			}
			lo, hi := prefixRange(r.Dst)
			byTable[r.Table] = append(byTable[r.Table], layerEntry{lo, hi, routeKeyOf(r, keys, withBits), final(r)})
		}
		for i := range st.RouteSets {
			rs := &st.RouteSets[i]
			tmpl := rs.Template
			for _, d := range rs.Dsts {
				if d.Addr().Is4() != (s.fam == 4) {
					continue
				}
				tmpl.Dst = d
				lo, hi := prefixRange(d)
				byTable[tmpl.Table] = append(byTable[tmpl.Table], layerEntry{lo, hi, routeKeyOf(&tmpl, keys, withBits), final(&tmpl)})
			}
		}
		tables := make([]uint32, 0, len(byTable))
		for t := range byTable {
			tables = append(tables, t)
		}
		slices.Sort(tables)
		for _, t := range tables {
			s.layerOfTable[stateTable{k, t}] = addLayer(byTable[t])
		}
	}
	var misc []layerEntry
	addP := func(p netip.Prefix) {
		if p.IsValid() && p.Addr().Is4() == (s.fam == 4) {
			lo, hi := prefixRange(p)
			misc = append(misc, layerEntry{lo, hi, p.Masked().String(), false})
		}
	}
	for _, p := range specials(s.fam) {
		addP(p)
	}
	for _, st := range states {
		for _, a := range st.Addrs {
			addP(netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Addr().BitLen()))
			addP(a.Prefix.Masked())
			if a.Peer.IsValid() {
				addP(a.Peer.Masked())
			}
		}
	}
	for _, m := range ms {
		for _, p := range m.Dst {
			addP(p)
		}
		for _, p := range m.NotDst {
			addP(p)
		}
	}
	addLayer(misc)
	s.groups = overlay(layers, max)
}

// routeKey is what a route is besides its destination, for the common
// single-path routes; others use their text.
type routeKey struct {
	table              uint32
	typ                state.RouteType
	bits               int
	src                netip.Prefix
	tos                uint8
	metric             uint32
	proto              state.Protocol
	scope              state.Scope
	prefsrc, gw        netip.Addr
	dev                string
	flags, nhflags     uint32
	pref               uint8
	nhid, mtu, nweight uint32
	multi              string
}

func routeKeyOf(r *state.Route, keys map[routeKey]string, withBits bool) string {
	k := routeKey{table: r.Table, typ: r.Type, src: r.Src, tos: r.TOS, metric: r.Metric,
		proto: r.Protocol, scope: r.Scope, prefsrc: r.PrefSrc, flags: uint32(r.Flags), pref: r.Pref, nhid: r.NHID, mtu: r.MTU}
	if withBits {
		k.bits = r.Dst.Bits()
	}
	switch len(r.Nexthops) {
	case 0:
	case 1:
		nh := r.Nexthops[0]
		k.gw, k.dev, k.nhflags, k.nweight = nh.Gateway, nh.Dev, uint32(nh.Flags), uint32(nh.Weight)
	default:
		k.multi = fmt.Sprint(r.Nexthops)
	}
	if s, ok := keys[k]; ok {
		return s
	}
	s := strconv.Itoa(len(keys))
	keys[k] = s
	return s
}

// rpFilter reports whether some interface may filter sources by reverse
// path: an rp_filter sysctl that is not 0, or one a read state does not
// show (a state without sysctls at all is a compiled one: the kernel's
// default, off).
func rpFilter(st *state.State) bool {
	if len(st.Sysctls) == 0 {
		return false
	}
	for k, v := range st.Sysctls {
		if strings.HasSuffix(k, ".rp_filter") && strings.HasPrefix(k, "net.ipv4.conf.") && v != "0" {
			return true
		}
	}
	if _, ok := st.Sysctls["net.ipv4.conf.all.rp_filter"]; !ok {
		return true
	}
	for _, l := range st.Links {
		if _, ok := st.Sysctls["net.ipv4.conf."+l.Name+".rp_filter"]; !ok {
			return true
		}
	}
	return false
}
