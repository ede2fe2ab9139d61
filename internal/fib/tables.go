package fib

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
	"github.com/tunroute/tunroute/internal/state"
)

// nhop is one nexthop of a route, with what the kernel derives from it.
type nhop struct {
	gw       netip.Addr
	dev      *link
	weight   int32
	flags    state.NexthopFlags // as dumped
	dead     bool
	linkdown bool
	onlink   bool
	// v4: nh_scope. A gateway is used (printed as "via") only when the
	// gateway resolved through a link-scope route (fib-semantics §3.5).
	useGW bool
	// gwUncertain: the gateway resolves differently now than a gateway
	// on a connected subnet would have when the route was added.
	gwUncertain bool
	saddr       uint32 // v4 nh_saddr: inet_select_addr(dev, gw, route scope)
	// saddrAlt: for a nexthop object, the source the kernel selects
	// once an IPv4 address changed after the object was made (with the
	// route's scope; saddr is the one made with the object, with its
	// own scope less one).
	saddrAlt uint32
	bound    int32 // multipath upper bound (v4; v6 keeps it per sibling alias)
}

// rattrs are the attributes of a route other than its prefix, TOS and
// metric. Routes sharing them share one rattrs (a full Internet table
// has few distinct nexthops).
type rattrs struct {
	routeHead
	nhgroup state.NHGroupKind // the kind of group nhid is, if one
	// memberUnknown: an IPv6 multipath member whose own src and pref
	// the snapshot could not learn (state.Member.Unknown).
	memberUnknown bool
	nhs           []nhop
	err           errno // route type error (blackhole, unreachable, ...)
	dead          bool  // all nexthops dead (fib_flags RTNH_F_DEAD)
	v6            bool
	src           netip.Prefix // v6 source prefix (for display)
	// rtext is the route's text after its prefix and TOS, up to its
	// metric (" via GW dev D proto P scope S src A"); rjson is the same,
	// JSON-escaped. Empty for IPv6 sibling groups (rendered on demand).
	rtext, rjson string
}

// routeHead is what a route says about itself besides its prefix, TOS,
// metric and nexthops: the start of both its interned attributes and
// their interning key.
type routeHead struct {
	typ     state.RouteType
	table   uint32
	proto   state.Protocol
	scope   state.Scope
	prefsrc netip.Addr
	flags   state.NexthopFlags
	mtu     uint32
	pref    uint8
	nhid    uint32
}

// attrKey interns single-path routes.
type attrKey struct {
	routeHead
	gw      netip.Addr
	dev     *link
	weight  int32
	nhflags state.NexthopFlags
	src     netip.Prefix
}

type family4 struct {
	tables  map[uint32]*table4
	attrs   []rattrs
	classes []alias4
	rules   rules
}

type family6 struct {
	tables map[uint32]*table6
	attrs  []rattrs
	rules  rules
	// users maps a nexthop object to the IPv6 route members using it
	// (the kernel caches one dst per object and CPU, remembering the
	// route that made it).
	users map[uint32][]nhUser
	// walked is the rule list as the snapshot shows it when rules holds
	// the kernel's fast path instead (default rules deleted, none added:
	// fib6_has_custom_rules is still false); nil otherwise.
	walked *rules
}

type table6 struct {
	id      uint32
	lpm     *bart.Table[int32]
	nodes   []node6
	aliases []alias6
	subs    []subtree6
	missing bool // left out of a partial FIB (NewPartial)
}

type node6 struct {
	text  string // the prefix as a trace shows it
	pfx   netip.Prefix
	first int32 // plain routes (no source prefix), metric order
	n     int32
	sub   int32 // source subtree, -1 if none
}

type subtree6 struct {
	lpm   *bart.Table[int32]
	nodes []snode6
}

type snode6 struct {
	pfx   netip.Prefix
	first int32
	n     int32
}

// parentIn returns the node of the longest prefix in lpm that is shorter
// than p and covers it.
func parentIn(lpm *bart.Table[int32], p netip.Prefix) (int32, bool) {
	if p.Bits() == 0 {
		return 0, false
	}
	_, n, ok := lpm.LookupPrefixLPM(netip.PrefixFrom(p.Addr(), p.Bits()-1))
	return n, ok
}

type alias6 struct {
	attrs    int32
	metric   uint32
	bound    int32 // multipath upper bound of this sibling
	sibFirst int32 // first alias of the sibling group (itself if none)
	sibN     int32 // size of the sibling group (1 if none)
	// leaf is the nexthop object whose fib6_nh this member uses (the
	// route's own object, or its group's member), 0 if none.
	leaf uint32
}

// nhUser is an IPv6 route member using a nexthop object's fib6_nh.
type nhUser struct {
	t           *table6
	node, alias int32
}

// buildRoutes compiles the routes of both families into per-table prefix
// tables.
func (f *FIB) buildRoutes(s *state.State) error {
	f.v4.tables = map[uint32]*table4{}
	f.v6.tables = map[uint32]*table6{}
	intern4 := map[attrKey]int32{}
	intern6 := map[attrKey]int32{}

	type pending4 struct {
		t *table4
		// nodes maps a destination (address<<8 | length) to its node;
		// it is built only once a route comes out of address order. A
		// kernel dump walks each table in address order (the prefixes
		// of one address together), so a route's node is then the last
		// one or one of the run since runStart with the same address.
		nodes    *nodeIndex
		runStart int32
		items    []struct {
			node  int32
			alias alias4
		}
	}
	type item6 struct {
		dst, src netip.Prefix
		alias    alias6
		route    int32
	}
	p4 := map[uint32]*pending4{}
	classIDs := map[alias4]int32{}
	classOf := func(a alias4) int32 {
		id, ok := classIDs[a]
		if !ok {
			id = int32(len(f.v4.classes))
			f.v4.classes = append(f.v4.classes, a)
			classIDs[a] = id
		}
		return id
	}
	p6 := map[uint32][]item6{}
	// IPv4 routes per table, to size the pending tables once.
	n4 := map[uint32]int{}
	n6 := map[uint32]int{} // and IPv6 routes (a multipath one counts once)
	var idbuf [1]int32
	for ri := range s.Routes {
		if r := &s.Routes[ri]; r.Dst.Addr().Is4() {
			n4[r.Table]++
		} else {
			n6[r.Table]++
		}
	}

	for ri := range s.Routes {
		r := &s.Routes[ri]
		if !r.Dst.IsValid() {
			return fmt.Errorf("fib: routes[%d]: dst is missing", ri)
		}
		if r.Type == 0 {
			return fmt.Errorf("fib: routes[%d] %s: type is missing", ri, r.Dst)
		}
		dst := r.Dst.Masked()
		if !r.Is6() {
			ids, err := f.internRoute(r, false, intern4, &f.v4.attrs, &idbuf)
			if err != nil {
				return fmt.Errorf("fib: routes[%d] %s: %w", ri, r.Dst, err)
			}
			p := p4[r.Table]
			if p == nil {
				n := n4[r.Table]
				p = &pending4{t: &table4{id: r.Table, nodes: make([]node4, 0, n)}}
				p.items = make([]struct {
					node  int32
					alias alias4
				}, 0, n)
				p4[r.Table] = p
			}
			addr, plen := v4u(dst.Addr()), uint8(dst.Bits())
			nn := int32(len(p.t.nodes))
			if p.nodes == nil && nn > 0 && addr < p.t.nodes[nn-1].addr {
				// Out of address order (a snapshot, a preview): index
				// the nodes so far and go on by the index.
				p.nodes = newNodeIndex(n4[r.Table])
				for i := range p.t.nodes {
					nd := &p.t.nodes[i]
					p.nodes.get(uint64(nd.addr)<<8|uint64(nd.plen), int32(i))
				}
			}
			n, ok := nn, false
			if p.nodes != nil {
				n, ok = p.nodes.get(uint64(addr)<<8|uint64(plen), nn)
			} else if nn > 0 && addr == p.t.nodes[nn-1].addr {
				for i := p.runStart; i < nn; i++ {
					if p.t.nodes[i].plen == plen {
						n, ok = i, true
						break
					}
				}
			} else {
				p.runStart = nn
			}
			if !ok {
				p.t.nodes = append(p.t.nodes, node4{addr: addr, plen: plen})
			}
			if dst.Bits() == 0 {
				p.t.nDefault++
			}
			p.items = append(p.items, struct {
				node  int32
				alias alias4
			}{n, alias4{attrs: ids[0], metric: r.Metric, tos: r.TOS}})
			continue
		}
		// IPv6: a multipath route is a group of sibling routes, one per
		// nexthop, each with its own fib6_info.
		ids, err := f.internRoute(r, true, intern6, &f.v6.attrs, &idbuf)
		if err != nil {
			return fmt.Errorf("fib: routes[%d] %s: %w", ri, r.Dst, err)
		}
		src := r.Src
		if src.IsValid() {
			src = src.Masked()
			if src.Bits() == 0 {
				src = netip.Prefix{}
			}
		}
		if p6[r.Table] == nil {
			p6[r.Table] = make([]item6, 0, n6[r.Table])
		}
		for k, id := range ids {
			leaf := r.NHID
			if o := f.nhObjects[r.NHID]; o != nil && len(o.Group) == len(ids) {
				leaf = o.Group[k].ID
			}
			p6[r.Table] = append(p6[r.Table], item6{dst: dst, src: src, route: int32(ri),
				alias: alias6{attrs: id, metric: r.Metric, sibN: int32(len(ids)), leaf: leaf}})
		}
	}

	for id, p := range p4 {
		t := p.t
		// Counting sort of the routes by node, keeping dump order.
		count := make([]int32, len(t.nodes)+1)
		for _, it := range p.items {
			count[it.node+1]++
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		all := make([]alias4, len(p.items))
		pos := slices.Clone(count[:len(t.nodes)])
		for _, it := range p.items {
			all[pos[it.node]] = it.alias
			pos[it.node]++
		}
		routes := make([][]alias4, len(t.nodes))
		for i := range routes {
			routes[i] = all[count[i]:count[i+1]]
		}
		t.finish(routes, classOf)
		f.v4.tables[id] = t
	}
	for _, t := range f.v4.tables {
		t.classes = f.v4.classes
	}

	for id, items := range p6 {
		t := &table6{id: id, lpm: new(bart.Table[int32])}
		// Group by (dst, src) keeping dump order; then order each group by
		// metric (insertion order within a metric).
		type key struct{ dst, src netip.Prefix }
		groups := make(map[key][]item6, len(items))
		order := make([]key, 0, len(items))
		t.aliases = make([]alias6, 0, len(items))
		t.nodes = make([]node6, 0, len(items))
		for _, it := range items {
			k := key{it.dst, it.src}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], it)
		}
		dnodes := make(map[netip.Prefix]int32, len(order))
		for _, k := range order {
			g := groups[k]
			slices.SortStableFunc(g, func(a, b item6) int { return cmp.Compare(a.alias.metric, b.alias.metric) })
			first := int32(len(t.aliases))
			for i := range g {
				a := g[i].alias
				if a.sibN > 1 {
					// siblings: consecutive aliases of the same route
					j := i
					for j > 0 && g[j-1].route == g[i].route {
						j--
					}
					a.sibFirst = first + int32(j)
				} else {
					a.sibFirst = first + int32(i)
					a.sibN = 1
				}
				t.aliases = append(t.aliases, a)
			}
			dn, ok := dnodes[k.dst]
			if !ok {
				dn = int32(len(t.nodes))
				dnodes[k.dst] = dn
				txt := "default"
				if k.dst.Bits() > 0 {
					txt = string(appendPrefix(nil, k.dst))
					if k.dst.IsSingleIP() {
						txt = k.dst.Addr().String()
					}
				}
				t.nodes = append(t.nodes, node6{pfx: k.dst, sub: -1, text: txt})
				t.lpm.Insert(k.dst, dn)
			}
			nd := &t.nodes[dn]
			for i := first; i < int32(len(t.aliases)); i++ {
				if l := t.aliases[i].leaf; l != 0 {
					if f.v6.users == nil {
						f.v6.users = map[uint32][]nhUser{}
					}
					f.v6.users[l] = append(f.v6.users[l], nhUser{t: t, node: dn, alias: i})
				}
			}
			if !k.src.IsValid() {
				nd.first, nd.n = first, int32(len(g))
				continue
			}
			if nd.sub < 0 {
				nd.sub = int32(len(t.subs))
				t.subs = append(t.subs, subtree6{lpm: new(bart.Table[int32])})
			}
			st := &t.subs[nd.sub]
			st.lpm.Insert(k.src, int32(len(st.nodes)))
			st.nodes = append(st.nodes, snode6{pfx: k.src, first: first, n: int32(len(g))})
		}
		// Upper bounds per sibling group (rt6_multipath_rebalance).
		for i := 0; i < len(t.aliases); {
			a := &t.aliases[i]
			if a.sibN <= 1 || a.sibFirst != int32(i) {
				i++
				continue
			}
			grp := t.aliases[i : i+int(a.sibN)]
			total := int64(0)
			for _, s := range grp {
				if !f.v6dead(&f.v6.attrs[s.attrs].nhs[0]) {
					total += int64(f.v6.attrs[s.attrs].nhs[0].weight)
				}
			}
			w := int64(0)
			for j := range grp {
				nh := &f.v6.attrs[grp[j].attrs].nhs[0]
				grp[j].bound = -1
				if !f.v6dead(nh) && total > 0 {
					w += int64(nh.weight)
					grp[j].bound = int32(divRoundClosest(uint64(w)<<31, uint64(total)) - 1)
				}
			}
			i += len(grp)
		}
		for i := range t.aliases {
			if t.aliases[i].sibN <= 1 {
				t.aliases[i].bound = -1
			}
		}
		f.v6.tables[id] = t
	}
	for _, us := range f.v6.users {
		// in table and entry order, not the map's
		slices.SortFunc(us, func(a, b nhUser) int {
			return cmp.Or(cmp.Compare(a.t.id, b.t.id), cmp.Compare(a.alias, b.alias))
		})
	}
	return nil
}

func divRoundClosest(a, b uint64) uint64 { return (a + b/2) / b }

func (f *FIB) v6dead(nh *nhop) bool {
	return nh.dead || nh.linkdown && nh.dev != nil && nh.dev.ignoreLD6
}

// internRoute returns the attribute ids of r: one for an IPv4 route, one
// per sibling for an IPv6 multipath route.
// internRoute returns the attribute ids of r's paths; for a single path the
// slice is buf's storage (the caller uses it before the next call).
func (f *FIB) internRoute(r *state.Route, v6 bool, intern map[attrKey]int32, attrs *[]rattrs, buf *[1]int32) ([]int32, error) {
	base := rattrs{routeHead: routeHead{typ: r.Type, table: r.Table, proto: r.Protocol, scope: r.Scope, prefsrc: r.PrefSrc,
		flags: r.Flags, mtu: r.MTU, pref: r.Pref, nhid: r.NHID}, nhgroup: r.NHGroup, v6: v6, err: routeTypeErr(uint8(r.Type))}
	if v6 && r.Src.IsValid() && r.Src.Bits() > 0 {
		base.src = r.Src.Masked()
	}
	mk := func(nh *state.Nexthop, single bool) (nhop, error) {
		var out nhop
		out.gw = nh.Gateway
		if nh.Dev != "" {
			out.dev = f.byName[nh.Dev]
			if out.dev == nil {
				return out, fmt.Errorf("nexthop dev %q is not among links", nh.Dev)
			}
		} else if nh.Index != 0 {
			out.dev = f.byIndex[nh.Index]
		}
		out.weight = int32(nh.Weight)
		if out.weight <= 0 {
			out.weight = 1
		}
		out.flags = nh.Flags
		if single {
			out.flags |= r.Flags & 0xff
		}
		out.dead = out.flags&state.NexthopDead != 0
		out.linkdown = out.flags&state.NexthopLinkdown != 0
		out.onlink = out.flags&state.NexthopOnlink != 0
		// A state compiled rather than observed may lack the flags the
		// kernel sets on carrier loss; derive them from the link.
		hostRoute := r.Scope == state.ScopeHost || v6 && (r.Type == state.RouteLocal || r.Type == state.RouteAnycast)
		if out.dev != nil && out.dev.up && !out.dev.carrier && !out.dev.loopback && !hostRoute {
			out.linkdown = true
		}
		if !v6 && out.dead && out.linkdown && out.dev != nil && out.dev.up && out.dev.ignoreLD4 {
			// "dead linkdown" on a device that is up: the dump marks a
			// linkdown nexthop dead when ignore_routes_with_linkdown is
			// set; the nexthop itself is only linkdown.
			out.dead = false
		}
		if v6 && out.dead && out.linkdown && out.dev != nil && out.dev.up && out.dev.ignoreLD6 {
			out.dead = false
		}
		out.bound = -1
		return out, nil
	}
	if len(r.Nexthops) <= 1 {
		var nh nhop
		if len(r.Nexthops) == 1 {
			var err error
			if nh, err = mk(&r.Nexthops[0], true); err != nil {
				return nil, err
			}
		} else {
			nh = nhop{weight: 1, bound: -1}
			if r.Flags&state.NexthopDead != 0 {
				nh.dead = true
			}
		}
		if v6 && nh.dev == nil {
			nh.dev = f.lo // reject routes live on lo
		}
		k := attrKey{routeHead: base.routeHead, gw: nh.gw, dev: nh.dev, weight: nh.weight, nhflags: nh.flags, src: base.src}
		if id, ok := intern[k]; ok {
			buf[0] = id
			return buf[:], nil
		}
		a := base
		a.nhs = []nhop{nh}
		a.dead = nh.dead
		id := int32(len(*attrs))
		*attrs = append(*attrs, a)
		intern[k] = id
		buf[0] = id
		return buf[:], nil
	}
	nhs := make([]nhop, len(r.Nexthops))
	for i := range r.Nexthops {
		var err error
		if nhs[i], err = mk(&r.Nexthops[i], false); err != nil {
			return nil, err
		}
	}
	if !v6 {
		a := base
		a.nhs = nhs
		a.dead = true
		for i := range nhs {
			if !nhs[i].dead {
				a.dead = false
			}
		}
		id := int32(len(*attrs))
		*attrs = append(*attrs, a)
		return []int32{id}, nil
	}
	ids := make([]int32, len(nhs))
	for i := range nhs {
		a := base
		if m := r.Nexthops[i].Member; m != nil && i > 0 {
			// each member is a route of its own in the kernel
			a.prefsrc, a.pref, a.mtu, a.memberUnknown = m.PrefSrc, m.Pref, m.MTU, m.Unknown
		}
		a.nhs = []nhop{nhs[i]}
		a.dead = nhs[i].dead
		ids[i] = int32(len(*attrs))
		*attrs = append(*attrs, a)
	}
	return ids, nil
}

// finishAttrs4 computes what the kernel derives per IPv4 nexthop: whether
// the gateway is used (nh_scope link), the cached preferred source and the
// multipath upper bounds.
func (f *FIB) finishAttrs4() {
	for i := range f.v4.attrs {
		a := &f.v4.attrs[i]
		total := int64(0)
		for j := range a.nhs {
			nh := &a.nhs[j]
			if nh.gw.IsValid() {
				nh.useGW, nh.gwUncertain = f.gatewayScopeLink(a, nh)
			}
			if nh.dev != nil {
				var gw uint32
				if nh.gw.Is4() {
					gw = v4u(nh.gw)
				}
				nh.saddr = f.selectAddr4(nh.dev, gw, uint8(a.scope))
				nh.saddrAlt = nh.saddr
				if o := f.nhObject4(a, j); o != nil && o.Scope != 0 {
					// nh_create_ipv4: fib_info_update_nhc_saddr with the
					// nexthop's scope less one
					nh.saddr = f.selectAddr4(nh.dev, gw, uint8(o.Scope)-1)
				}
			}
			if !f.mpDead4(nh) {
				total += int64(nh.weight)
			}
		}
		if len(a.nhs) > 1 {
			w := int64(0)
			for j := range a.nhs {
				nh := &a.nhs[j]
				nh.bound = -1
				if !f.mpDead4(nh) && total > 0 {
					w += int64(nh.weight)
					nh.bound = int32(divRoundClosest(uint64(w)<<31, uint64(total)) - 1)
				}
			}
		}
	}
}

// nhObject4 is the nexthop object behind nexthop j of a route through
// one (a group's member j), or nil.
func (f *FIB) nhObject4(a *rattrs, j int) *state.NexthopObject {
	if a.nhid == 0 {
		return nil
	}
	o := f.nhObjects[a.nhid]
	if o != nil && len(o.Group) > 0 {
		if j >= len(o.Group) {
			return nil
		}
		o = f.nhObjects[o.Group[j].ID]
	}
	if o == nil || o.Family != 4 {
		return nil
	}
	return o
}

func (f *FIB) mpDead4(nh *nhop) bool {
	return nh.dead || nh.linkdown && nh.dev != nil && nh.dev.ignoreLD4
}

// gatewayScopeLink decides nh_scope for a gateway nexthop
// (fib_check_nh_v4_gw): onlink forces link scope; otherwise the gateway
// is looked up with scope >= link (and the nexthop's device as oif) in the
// route's table, then through the rules; a host-scope or local result
// means the gateway is not used.
//
// The kernel decides this when the route is added (fib-semantics §11.7),
// when the routes derived from addresses exist but routes added later
// may not. The answer is taken from those kernel routes alone; when all
// of today's routes give another, the nexthop is flagged.
func (f *FIB) gatewayScopeLink(a *rattrs, nh *nhop) (use, uncertain bool) {
	if nh.onlink {
		return true, false
	}
	if !nh.gw.Is4() {
		// IPv4 route via an IPv6 gateway: resolved by neighbour discovery
		// on the given device.
		return true, false
	}
	kernel := f.resolveGateway(a, nh, true)
	all := f.resolveGateway(a, nh, false)
	return kernel, kernel != all
}

func (f *FIB) resolveGateway(a *rattrs, nh *nhop, kernelOnly bool) bool {
	scope := uint8(a.scope) + 1
	if scope < uint8(state.ScopeLink) {
		scope = uint8(state.ScopeLink)
	}
	fl := flow4{daddr: v4u(nh.gw), iif: 1, scope: scope, ignoreLinkstate: true, kernelOnly: kernelOnly}
	if nh.dev != nil {
		fl.oif = int32(nh.dev.index)
	}
	var res fibres4
	err := errAGAIN
	if a.table != 0 && a.table != state.TableMain {
		if t := f.v4.tables[a.table]; t != nil {
			err = f.tableLookup4(t, &fl, &res, nil)
		}
	}
	if err != errOK {
		err = f.fibLookup4(&fl, &res, nil, nil)
	}
	if err != errOK {
		// Nothing resolves it now: the kernel kept the scope it computed
		// when the route was added, which for a working gateway is link.
		return true
	}
	return res.typ != state.RouteLocal && uint8(res.at.scope) == uint8(state.ScopeLink)
}

// attrTexts precomputes the text of each route attribute set.
func (f *FIB) attrTexts() {
	for _, fam := range []*[]rattrs{&f.v4.attrs, &f.v6.attrs} {
		for i := range *fam {
			a := &(*fam)[i]
			b := appendNexthops(nil, a.nhs, a.v6, a.typ)
			b = appendOrigin(b, a)
			a.rtext = string(b)
			q := appendJSONString(nil, a.rtext)
			a.rjson = string(q[1 : len(q)-1])
		}
	}
}

// nodeIndex maps IPv4 destinations (address<<8 | length) to node numbers:
// an open-addressing hash table, a few times faster than a map for the
// million distinct keys of a full table.
type nodeIndex struct {
	slots []nodeSlot
	shift uint
}

type nodeSlot struct {
	key uint64 // key | 1<<63; 0 is empty
	val int32
}

func newNodeIndex(n int) *nodeIndex {
	bits := uint(4)
	for 1<<bits < 2*n {
		bits++
	}
	return &nodeIndex{slots: make([]nodeSlot, 1<<bits), shift: 64 - bits}
}

// get returns key's value, or inserts val for it and reports false.
func (x *nodeIndex) get(key uint64, val int32) (int32, bool) {
	k := key | 1<<63
	mask := uint64(len(x.slots) - 1)
	for i := (key * 0x9e3779b97f4a7c15) >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.key == k {
			return s.val, true
		}
		if s.key == 0 {
			s.key, s.val = k, val
			return val, false
		}
	}
}
