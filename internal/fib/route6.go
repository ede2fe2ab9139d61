package fib

import (
	"net/netip"
	"strconv"

	"github.com/tunroute/tunroute/internal/state"
)

// lookup flags (RT6_LOOKUP_F_*)
const (
	strictIface           = 0x1
	strictReachable       = 0x2
	strictIgnoreLinkstate = 0x40
)

// flow6 is the kernel's flowi6 for one lookup.
type flow6 struct {
	daddr, saddr netip.Addr
	dhi, dlo     uint64
	shi, slo     uint64
	hasSrc       bool
	// noOrphans: the source routes of a node without plain routes are
	// not found (see orphanSubtree6)
	noOrphans    bool
	iif, oif     int32
	mark, uid    uint32
	tos          uint8
	proto        uint8
	sport, dport uint16
}

// fibres6 is the result of one IPv6 table lookup.
type fibres6 struct {
	t     *table6
	node  int32
	snode int32 // -1: plain routes of the node
	alias int32
	at    *rattrs
	typ   state.RouteType
	rule  int32
	// pref is the router preference of the route rt6_select chose: the
	// kernel keeps it (res->fib6_flags) when the multipath hash then
	// picks another member, whose own src is used.
	pref uint8
	// rules is the rule list rule indexes into.
	rules []crule
}

func (r *fibres6) prefix() netip.Prefix { return r.t.nodes[r.node].pfx }

func (fl *flow6) ruleFlow(rf *ruleFlow) {
	*rf = ruleFlow{iif: fl.iif, oif: fl.oif, mark: fl.mark, uid: fl.uid,
		srcHi: fl.shi, srcLo: fl.slo, dstHi: fl.dhi, dstLo: fl.dlo, hasSrc: fl.hasSrc,
		tos: fl.tos, proto: fl.proto, sport: fl.sport, dport: fl.dport, v6: true}
}

type pos6 struct {
	d, s  int32
	valid bool
}

func (t *table6) parent(d int32) (int32, bool) { return parentIn(t.lpm, t.nodes[d].pfx) }

func (st *subtree6) parent(s int32) (int32, bool) { return parentIn(st.lpm, st.nodes[s].pfx) }

// root returns the ::/0 node if the table has one.
func (t *table6) root() (int32, bool) {
	return t.lpm.Get(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
}

// initial is fib6_node_lookup: the deepest node covering daddr whose
// source subtree (if any) matches saddr. A node with a subtree that does
// not match is passed over, plain routes included (IPV6_SUBTREES quirk).
func (t *table6) initial(fl *flow6) pos6 {
	d, ok := t.lpm.Lookup(fl.daddr)
	for ok {
		nd := &t.nodes[d]
		if nd.sub >= 0 && !(fl.noOrphans && nd.n == 0) {
			if s, ok := t.subs[nd.sub].lpm.Lookup(fl.saddr); ok {
				return pos6{d, s, true}
			}
		} else if nd.n > 0 {
			return pos6{d, -1, true}
		}
		d, ok = t.parent(d)
	}
	// nothing matched: the kernel starts from the root, whose leaf holds
	// the plain default routes (if any).
	if r, ok := t.root(); ok && t.nodes[r].n > 0 {
		return pos6{r, -1, true}
	}
	return pos6{}
}

// backtrack is fib6_backtrack.
func (t *table6) backtrack(p pos6, fl *flow6) pos6 {
	d := p.d
	if p.s >= 0 {
		st := &t.subs[t.nodes[d].sub]
		if s, ok := st.parent(p.s); ok {
			return pos6{d, s, true}
		}
		if t.nodes[d].n > 0 {
			return pos6{d, -1, true}
		}
	}
	cur := d
	for {
		if t.nodes[cur].pfx.Bits() == 0 {
			return pos6{}
		}
		pn, ok := t.parent(cur)
		if !ok {
			return pos6{}
		}
		nd := &t.nodes[pn]
		if nd.sub >= 0 && !(fl.noOrphans && nd.n == 0) {
			if s, ok := t.subs[nd.sub].lpm.Lookup(fl.saddr); ok {
				return pos6{pn, s, true}
			}
		}
		if nd.n > 0 {
			return pos6{pn, -1, true}
		}
		cur = pn
	}
}

func (t *table6) span(p pos6) (int32, int32) {
	if p.s >= 0 {
		sn := &t.subs[t.nodes[p.d].sub].nodes[p.s]
		return sn.first, sn.n
	}
	nd := &t.nodes[p.d]
	return nd.first, nd.n
}

// score6 is rt6_score_route (neighbour state unknown: treated as usable,
// as the kernel does with an empty cache and ROUTER_PREF).
func score6(at *rattrs, oif int32, strict int) int {
	nh := &at.nhs[0]
	m := 0
	if oif == 0 || nh.dev != nil && int32(nh.dev.index) == oif {
		m = 2
	}
	if m == 0 && strict&strictIface != 0 {
		return -1
	}
	return m | int(at.pref^2)<<2
}

// rt6Select is rt6_select/find_rr_leaf over one node: the lowest-metric
// group first, then the remaining routes; the first route with the
// highest score wins.
func (f *FIB) rt6Select(t *table6, p pos6, oif int32, strict int) int32 {
	first, n := t.span(p)
	if n == 0 {
		return -1
	}
	metric := t.aliases[first].metric
	mpri, best, cont := -1, int32(-1), int32(-1)
	match := func(i int32) {
		at := &f.v6.attrs[t.aliases[i].attrs]
		nh := &at.nhs[0]
		if nh.dead {
			return
		}
		if nh.linkdown && nh.dev != nil && nh.dev.ignoreLD6 && strict&strictIgnoreLinkstate == 0 {
			return
		}
		m := score6(at, oif, strict)
		if m < 0 {
			return
		}
		if m > mpri {
			mpri, best = m, i
		}
	}
	for i := first; i < first+n; i++ {
		if t.aliases[i].metric != metric {
			cont = i
			break
		}
		if f.blackholeObject6(t, i) {
			return i
		}
		match(i)
	}
	if best >= 0 || cont < 0 {
		return best
	}
	for i := cont; i < first+n; i++ {
		if f.blackholeObject6(t, i) {
			return i
		}
		match(i)
	}
	return best
}

// markOrphan6 records that the lookup ended in a source-specific route
// of a node without plain routes: the kernel may no longer find such a
// route (fib6_node_lookup skips a node whose leaf is gone, which happens
// when a plain route added after the source route is deleted again).
func (sc *scratch) markOrphan6(res *fibres6) {
	if sc != nil && res.at != nil && res.t != nil && res.snode >= 0 && res.t.nodes[res.node].n == 0 {
		sc.orphan6 = true
	}
}

// blackholeObject6 reports whether alias i is a route through a
// blackhole nexthop object (or a group of one): __find_rr_leaf takes it
// at once, whatever the oif and whatever it found before.
func (f *FIB) blackholeObject6(t *table6, i int32) bool {
	at := &f.v6.attrs[t.aliases[i].attrs]
	return at.nhid != 0 && at.typ == state.RouteBlackhole && t.aliases[i].sibFirst == i
}

// tableLookup6 is ip6_pol_route on one table: errOK with res set, the
// error of a reject route, or errAGAIN for no route or a throw route.
func (f *FIB) tableLookup6(t *table6, fl *flow6, oif int32, strict int, res *fibres6, r *Result) errno {
	if t.missing {
		return f.miss()
	}
	p := t.initial(fl)
	for p.valid {
		if ai := f.rt6Select(t, p, oif, strict); ai >= 0 {
			pref := f.v6.attrs[t.aliases[ai].attrs].pref
			ai = f.selectPath6(t, ai, fl, oif, strict, r)
			at := &f.v6.attrs[t.aliases[ai].attrs]
			*res = fibres6{t: t, node: p.d, snode: p.s, alias: ai, at: at, typ: at.typ, rule: res.rule, pref: pref, rules: res.rules}
			return at.err
		}
		p = t.backtrack(p, fl)
	}
	return errAGAIN
}

// selectPath6 is fib6_select_path for sibling (ECMP) routes.
func (f *FIB) selectPath6(t *table6, match int32, fl *flow6, oif int32, strict int, r *Result) int32 {
	al := &t.aliases[match]
	if al.sibN <= 1 {
		return match
	}
	first := al.sibFirst
	// A nexthop group is one route to the kernel: the oif only decided
	// whether it matched, the hash picks among all its members
	// (nexthop_select_path); siblings must also suit the oif.
	group := f.v6.attrs[al.attrs].nhid != 0
	resilient := group && f.v6.attrs[al.attrs].nhgroup == state.NHGroupResilient
	pick := func(h uint32) int32 {
		fa := &t.aliases[first]
		if int64(h) <= int64(fa.bound) {
			if group || score6(&f.v6.attrs[fa.attrs], oif, strict) >= 0 {
				return first
			}
			return match
		}
		for j := first + 1; j < first+al.sibN; j++ {
			sa := &t.aliases[j]
			if int64(h) > int64(sa.bound) {
				continue
			}
			if group {
				return j
			}
			if score6(&f.v6.attrs[sa.attrs], oif, strict) < 0 {
				break
			}
			return j
		}
		return match
	}
	if f.mpSeedKnown && f.mpPolicy6 <= 2 && !resilient {
		return pick(f.mpHash6(fl))
	}
	// Unknown hash: collect what every hash bucket would pick.
	var seen [8]int32
	ns := 0
	out := match
	if r != nil {
		r.Possible = r.Possible[:0]
	}
	for j := first; j < first+al.sibN; j++ {
		b := t.aliases[j].bound
		if b < 0 {
			continue
		}
		c := pick(uint32(b))
		if resilient {
			// the bucket table is not in the snapshot: any member
			c = j
		}
		dup := false
		for k := 0; k < ns && k < len(seen); k++ {
			if seen[k] == c {
				dup = true
			}
		}
		if dup {
			continue
		}
		if ns < len(seen) {
			seen[ns] = c
		}
		if ns == 0 {
			out = c
		}
		ns++
		if r != nil {
			at := &f.v6.attrs[t.aliases[c].attrs]
			nh := &at.nhs[0]
			p := Nexthop{Gateway: nh.gw, Dev: linkNameOf(nh.dev), Weight: int(nh.weight)}
			// on the output path the source follows the member's device
			if a, ok := f.prefSrc6(at, t, c, fl, fl.iif == 1); ok {
				p.PrefSrc = a
			}
			r.Possible = append(r.Possible, p)
		}
	}
	if ns > 1 && r != nil && resilient {
		r.addUncertain(UncertainResilientGroup)
	} else if ns > 1 && r != nil {
		r.addUncertain(UncertainMultipathHash)
	} else if r != nil {
		r.Possible = r.Possible[:0]
	}
	return out
}

// ruleWalk6 is fib6_rule_lookup.
func (f *FIB) ruleWalk6(fl *flow6, oif int32, strict int, res *fibres6, tr *tracer, sc *scratch, r *Result) errno {
	rs := &f.v6.rules
	if sc != nil && sc.walk6 {
		rs = f.v6.walked
	}
	res.rules = rs.list
	var rf ruleFlow
	fl.ruleFlow(&rf)
	rule, err := rs.walk(f, &rf, sc, tr, true, func(i int32, r6 *crule) (errno, bool) {
		res.at = nil
		res.rule = i
		switch err := f.tableLookup6(r6.t6, fl, oif, strict, res, r); err {
		case errOK:
			v := r6.suppressed(res.prefix().Bits(), res.at.nhs[0].dev)
			tr.rule6(i, r6, v, r6.table, res)
			return errOK, v == vRoute
		case errAGAIN:
			if res.at != nil && res.typ == state.RouteThrow {
				tr.rule6(i, r6, vThrow, r6.table, res)
			} else {
				tr.rule(i, r6, vNoRoute, r6.table, nil)
			}
			res.at = nil
			res.rule = -1
			return err, false
		default:
			tr.rule6(i, r6, vErrorRoute, r6.table, res)
			return err, true
		}
	})
	res.rule = rule
	return err
}

// addrType6 is __ipv6_addr_type.
const (
	v6Unicast   = 0x0001
	v6Multicast = 0x0002
	v6Loopback  = 0x0010
	v6Linklocal = 0x0020
	v6Sitelocal = 0x0040
	v6Compatv4  = 0x0080
	v6Mapped    = 0x1000

	scopeNode   = 0x01
	scopeLink6  = 0x02
	scopeSite   = 0x05
	scopeGlobal = 0x0e
)

func addrType6(hi, lo uint64) int {
	st := uint32(hi >> 32)
	if st&0xE0000000 != 0 && st&0xE0000000 != 0xE0000000 {
		return v6Unicast | scopeGlobal<<16
	}
	if st&0xFF000000 == 0xFF000000 {
		sc := int(st>>16) & 0xf
		switch sc {
		case scopeNode:
			return v6Multicast | v6Loopback | sc<<16
		case scopeLink6:
			return v6Multicast | v6Linklocal | sc<<16
		case scopeSite:
			return v6Multicast | v6Sitelocal | sc<<16
		}
		return v6Multicast | sc<<16
	}
	if st&0xFFC00000 == 0xFE800000 {
		return v6Linklocal | v6Unicast | scopeLink6<<16
	}
	if st&0xFFC00000 == 0xFEC00000 {
		return v6Sitelocal | v6Unicast | scopeSite<<16
	}
	if st&0xFE000000 == 0xFC000000 {
		return v6Unicast | scopeGlobal<<16
	}
	if hi == 0 {
		if lo>>32 == 0 {
			if lo == 0 {
				return 0 // IPV6_ADDR_ANY
			}
			if lo == 1 {
				return v6Loopback | v6Unicast | scopeLink6<<16
			}
			return v6Compatv4 | v6Unicast | scopeGlobal<<16
		}
		if lo>>32 == 0x0000ffff {
			return v6Mapped | scopeGlobal<<16
		}
	}
	return v6Unicast | scopeGlobal<<16
}

// srcScope6 is __ipv6_addr_src_scope.
func srcScope6(typ int) int {
	if typ == 0 {
		return -1
	}
	return typ >> 16
}

func needStrict6(typ int) bool { return typ&(v6Multicast|v6Linklocal|v6Loopback) != 0 }

// output6 is ip6_route_output + rt6_fill_node for `ip -6 route get`.
func (f *FIB) output6(q *qflow, r *Result, sc *scratch) {
	tr := sc.tracer(r)
	fl := f.flow6(q)
	fl.noOrphans = sc != nil && sc.noOrphans6
	fl.iif = 1
	if q.oif != nil {
		fl.oif = int32(q.oif.index)
	}
	fl.uid = 0
	if q.uidSet {
		fl.uid = q.uid
	}
	strict := 0
	if needStrict6(addrType6(fl.dhi, fl.dlo)) || (fl.oif != 0 && !fl.hasSrc) {
		strict |= strictIface
	}
	f.lookup6(q, &fl, strict, true, r, tr, sc)
}

// input6 is ip6_route_input_lookup for `ip -6 route get ... iif DEV`:
// no forwarding check, no source validation.
func (f *FIB) input6(q *qflow, r *Result, sc *scratch) {
	tr := sc.tracer(r)
	fl := f.flow6(q)
	fl.noOrphans = sc != nil && sc.noOrphans6
	fl.iif = int32(q.iif.index)
	fl.uid = invalidUID
	if q.uidSet {
		fl.uid = q.uid
	}
	strict := 0
	if needStrict6(addrType6(fl.dhi, fl.dlo)) {
		strict |= strictIface
	}
	r.setIIF(q.iif)
	f.lookup6(q, &fl, strict, false, r, tr, sc)
}

// lookup6 walks the rules for fl and fills r with the route they find:
// for output (ip6_route_output, by fl's oif) or input (by its iif).
// strict is what the destination asks for; strictReachable is added
// unless every device forwards. A failed output lookup shows the error
// route that failed it.
func (f *FIB) lookup6(q *qflow, fl *flow6, strict int, output bool, r *Result, tr *tracer, sc *scratch) {
	if !f.fwd6All {
		strict |= strictReachable
	}
	dev := fl.iif
	if output {
		dev = fl.oif
	}
	var res fibres6
	res.rule = -1
	err := f.ruleWalk6(fl, dev, strict, &res, tr, sc, r)
	sc.markOrphan6(&res)
	if err != errOK {
		r.fail(err)
		r.failRule(res.rules, res.rule)
		if output && res.at != nil && res.at.err == err {
			r.ref = routeRef{v6: true, t6: res.t, node: res.node, snode: res.snode, alias: res.alias, at: res.at}
		}
		return
	}
	f.fill6(q, fl, &res, r, output)
}

func (f *FIB) flow6(q *qflow) flow6 {
	fl := flow6{daddr: q.dst, mark: q.mark, tos: q.tos, proto: q.proto, sport: q.sport, dport: q.dport}
	fl.dhi, fl.dlo = split6(q.dst)
	fl.saddr = netip.IPv6Unspecified()
	if q.src.IsValid() {
		fl.saddr = q.src
		fl.shi, fl.slo = split6(q.src)
		fl.hasSrc = fl.shi != 0 || fl.slo != 0
	}
	return fl
}

// fill6 fills the Result like rt6_fill_node does for the dst of a lookup.
func (f *FIB) fill6(q *qflow, fl *flow6, res *fibres6, r *Result, output bool) {
	at := res.at
	if !output && res.prefix().Addr().As16()[0] == 0xff {
		// rt6_fill_node asks multicast routing about a multicast route
		// on the input path; without an mroute cache entry that fails
		// and the reply is cut short.
		r.fail(errMSGSIZE)
		return
	}
	nh := &at.nhs[0]
	r.setRule6(f, res)
	r.Type = at.typ
	r.Dst = fl.daddr
	r.From = fl.saddr
	r.Table = at.table
	r.Protocol, r.Scope = at.proto, state.ScopeUniverse
	r.has |= hasProtocol | hasScope | hasMetric | hasPref
	r.Metric = res.t.aliases[res.alias].metric
	r.Pref = res.pref
	if at.memberUnknown {
		r.addUncertain(noteMemberUnknown)
	}
	r.MTU = at.mtu
	if nh.gw.IsValid() {
		r.Gateway = nh.gw
	}
	dev := nh.dev
	if at.typ == state.RouteLocal || at.typ == state.RouteAnycast && at.proto == 2 {
		// RTF_LOCAL, or RTF_ANYCAST (set on the kernel's own anycast
		// routes, not on `ip route add anycast`): delivered through lo
		dev = f.lo
	}
	r.setDev(dev)
	if a, ok := f.prefSrc6(at, res.t, res.alias, fl, output); ok {
		r.PrefSrc = a
	}
	if q.fibmatch {
		f.fibmatch6(res, r)
		f.fibmatchMembers6(res, r)
	} else {
		f.memberPrefs6(res, r)
	}
	f.sharedNexthop6(q, fl, res, r, output)
}

// fibmatchMembers6: with the hash unknown, a fibmatch answer is the
// entry of whichever member the hash picks (its own src and pref, the
// nexthops listed from it): the other members' are the alternatives.
func (f *FIB) fibmatchMembers6(res *fibres6, r *Result) {
	al := &res.t.aliases[res.alias]
	if al.sibN <= 1 || !r.hasUncertain(UncertainMultipathHash) && !r.hasUncertain(UncertainResilientGroup) {
		return
	}
	for j := al.sibFirst; j < al.sibFirst+al.sibN; j++ {
		if j == res.alias || res.t.aliases[j].bound < 0 {
			continue
		}
		alt := *r
		alt.Uncertain, alt.Otherwise, alt.Nexthops, alt.Possible = nil, nil, nil, nil
		at := &f.v6.attrs[res.t.aliases[j].attrs]
		f.fibmatch6(&fibres6{t: res.t, node: res.node, snode: res.snode, alias: j, at: at}, &alt)
		ans := alt.AppendAnswerJSON(nil)
		if r.hasAnswer(ans) {
			continue
		}
		nh := &at.nhs[0]
		r.Otherwise = append(r.Otherwise, Otherwise{If: "the hash picks the member via " + nh.gw.String() + " dev " + linkNameOf(nh.dev),
			Answer: ans, Line: string(alt.appendVerdictLine(nil))})
	}
}

// memberPrefs6: the kernel answers from the member's cached dst, which
// keeps the router preference of the lookup that made it (the member
// rt6_select chose then); when the members' preferences differ, any of
// them may be printed.
func (f *FIB) memberPrefs6(res *fibres6, r *Result) {
	al := &res.t.aliases[res.alias]
	if al.sibN <= 1 || f.v6.attrs[al.attrs].nhid != 0 {
		return
	}
	var seen [4]bool
	seen[r.Pref&3] = true
	for j := al.sibFirst; j < al.sibFirst+al.sibN; j++ {
		p := f.v6.attrs[res.t.aliases[j].attrs].pref & 3
		if seen[p] {
			continue
		}
		seen[p] = true
		alt := *r
		alt.Uncertain, alt.Otherwise, alt.Nexthops = nil, nil, nil // Possible stays: the path is as uncertain
		alt.Pref = p
		ans := alt.AppendAnswerJSON(nil)
		if r.hasAnswer(ans) {
			continue
		}
		r.addUncertain(UncertainMemberPref)
		r.Otherwise = append(r.Otherwise, Otherwise{If: "the kernel's cached route for this member was made by a lookup that chose a member with pref " + prefName(p),
			Answer: ans, Line: string(alt.appendVerdictLine(nil))})
	}
}

// sharedNexthop6: a route through a nexthop object answers with the
// route attributes (table, metric, protocol, pref, src; for fibmatch the
// whole entry) of whichever route using the same object first made the
// kernel's cached dst on the CPU that answers (rt6_get_pcpu_route shares
// the object's dst among its routes). The answer assumes this route; the
// others are the alternatives.
func (f *FIB) sharedNexthop6(q *qflow, fl *flow6, res *fibres6, r *Result, output bool) {
	leaf := res.t.aliases[res.alias].leaf
	users := f.v6.users[leaf]
	if leaf == 0 || len(users) < 2 {
		return
	}
	noted := false
	for _, u := range users {
		if u.t == res.t && u.alias == res.alias {
			continue
		}
		alt := *r
		alt.Uncertain, alt.Otherwise, alt.Nexthops = nil, nil, nil
		at := &f.v6.attrs[u.t.aliases[u.alias].attrs]
		alt.Type = at.typ
		alt.Table = at.table
		alt.Protocol = at.proto
		alt.Metric = u.t.aliases[u.alias].metric
		alt.Pref = at.pref
		alt.MTU = at.mtu
		alt.PrefSrc = netip.Addr{}
		if a, ok := f.prefSrc6(at, u.t, u.alias, fl, output); ok {
			alt.PrefSrc = a
		}
		if q.fibmatch {
			f.fibmatch6(&fibres6{t: u.t, node: u.node, snode: -1, alias: u.alias, at: at}, &alt)
		}
		ans := alt.AppendAnswerJSON(nil)
		if r.hasAnswer(ans) {
			continue
		}
		if !noted {
			r.addUncertain(UncertainSharedNexthop)
			noted = true
		}
		r.Otherwise = append(r.Otherwise, Otherwise{If: "the kernel's cached route through nexthop object " +
			strconv.FormatUint(uint64(leaf), 10) + " was made by a lookup of " + string(f.appendRoute(nil, &routeRef{v6: true, t6: u.t, node: u.node, snode: -1, alias: u.alias, at: at}, true)),
			Answer: ans, Line: string(alt.appendVerdictLine(nil))})
	}
}

// saddrDev6 is the device ip6_route_get_saddr selects the source on for
// alias i: its own, or for a nexthop group the first member's
// (nexthop_fib6_nh), whichever member the hash chose.
// prefSrc6 is the source the route with attributes at (alias i of table
// t) gives a packet of fl: its prefsrc, else on output the address the
// kernel picks on the route's device; ok is false when it gives none.
func (f *FIB) prefSrc6(at *rattrs, t *table6, i int32, fl *flow6, output bool) (netip.Addr, bool) {
	if at.prefsrc.IsValid() {
		return at.prefsrc, true
	}
	if sd := f.saddrDev6(t, i); output && sd != nil {
		return f.devGetSaddr6(sd, fl.daddr, fl.dhi, fl.dlo)
	}
	return netip.Addr{}, false
}

func (f *FIB) saddrDev6(t *table6, i int32) *link {
	al := &t.aliases[i]
	if f.v6.attrs[al.attrs].nhid != 0 && al.sibN > 1 {
		return f.v6.attrs[t.aliases[al.sibFirst].attrs].nhs[0].dev
	}
	return f.v6.attrs[al.attrs].nhs[0].dev
}

// fibmatch6 renders the matched FIB entry; a multipath entry lists its
// nexthops starting at the selected sibling.
func (f *FIB) fibmatch6(res *fibres6, r *Result) {
	at := res.at
	t := res.t
	al := &t.aliases[res.alias]
	r.fibMatch = true
	r.DstPrefix = res.prefix()
	r.Dst = netip.Addr{}
	r.From = netip.Addr{}
	if at.src.IsValid() {
		r.SrcPrefix = at.src
	}
	r.PrefSrc = at.prefsrc
	r.Pref = at.pref // the chosen member's own
	if at.nhid != 0 {
		r.NHID, r.NHInfo = at.nhid, f.nhObjects[at.nhid]
	}
	r.Possible = r.Possible[:0]
	flagsOf := func(nh *nhop) uint32 {
		fl := uint32(nh.flags) & 0xff &^ uint32(state.NexthopDead|state.NexthopLinkdown)
		if nh.dead {
			fl |= uint32(state.NexthopDead)
		}
		if nh.linkdown {
			fl |= uint32(state.NexthopLinkdown)
			if nh.dev != nil && nh.dev.ignoreLD6 {
				fl |= uint32(state.NexthopDead)
			}
		}
		return fl
	}
	if al.sibN <= 1 && at.nhgroup == state.NHGroupNone {
		nh := &at.nhs[0]
		r.Gateway = nh.gw
		r.Flags = flagsOf(nh)
		r.setDev(nh.dev)
		if at.typ == state.RouteLocal || at.typ == state.RouteAnycast {
			r.setDev(nh.dev)
		}
		return
	}
	r.Gateway = netip.Addr{}
	r.setDev(nil)
	r.Flags = 0
	r.Nexthops = r.Nexthops[:0]
	for k := int32(0); k < al.sibN; k++ {
		j := al.sibFirst + (res.alias-al.sibFirst+k)%al.sibN
		if at.nhid != 0 {
			j = al.sibFirst + k // a group lists its members in order
		}
		nh := &f.v6.attrs[t.aliases[j].attrs].nhs[0]
		r.Nexthops = append(r.Nexthops, Nexthop{Gateway: nh.gw, Dev: linkNameOf(nh.dev), Weight: int(nh.weight), Flags: flagsOf(nh)})
	}
}
