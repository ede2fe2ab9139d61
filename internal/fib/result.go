package fib

import (
	"net/netip"
	"strconv"

	"github.com/tunroute/tunroute/internal/state"
)

// Result is the kernel's answer to one query, with the explanation. Its
// fields mean what the keys of `ip -j -d route get` mean (iproute2 6.1);
// zero values are not printed.
type Result struct {
	Query  Query
	Family int // 4 or 6

	// Error is the kernel's message ("Network is unreachable", ...) or
	// iproute2's for a query it refuses (`Cannot find device "X"`);
	// empty on success.
	Error string
	err   errno

	Type      state.RouteType
	Dst       netip.Addr
	DstPrefix netip.Prefix // fibmatch: the matched entry's prefix
	From      netip.Addr   // RTA_SRC: the query's source (IPv6: always, :: if none)
	SrcPrefix netip.Prefix // fibmatch of a source-specific IPv6 route
	TOS       uint8        // the matched route's TOS
	Gateway   netip.Addr   // printed as "gateway", or "via" when of the other family
	Dev       string
	Table     uint32 // 0: none
	Protocol  state.Protocol
	Scope     state.Scope
	PrefSrc   netip.Addr
	Metric    uint32
	Flags     uint32 // rtm_flags bits iproute2 prints (dead, onlink, linkdown, rt_offload_failed, ...)
	Mark      uint32
	UID       uint32
	Cache     uint32 // RTCF_* bits (IPv4): local, brd, mc, redirect, ...
	MTU       uint32
	IIF       string
	Pref      uint8 // IPv6 router preference: 0 medium, 1 high, 3 low
	// Nexthops of a multipath entry (fibmatch).
	Nexthops []Nexthop
	// NHID is the nexthop object of the entry (fibmatch), and NHInfo the
	// object as iproute2 shows it with the answer ("nh_info").
	NHID   uint32
	NHInfo *state.NexthopObject
	// Possible lists the nexthops the kernel may choose when the snapshot
	// cannot determine its multipath hash; the fields above show the first.
	Possible []Nexthop
	// Uncertain explains what the snapshot cannot determine (hidden kernel
	// state, fib-semantics.md §11) and how it could change the answer.
	Uncertain []string
	// Otherwise lists the answers the kernel gives instead when the
	// hidden state is not what the answer assumes.
	Otherwise []Otherwise
	// Trace lists the rules that matched the flow (rules whose selectors
	// do not match are skipped without being tried), their verdicts, and
	// the notable decisions of the route resolution.
	Trace []Step

	// Rule that produced the route (RulePref, RuleText) when HasRule.
	HasRule  bool
	RulePref uint32
	RuleText string

	has        uint32
	possibleNH []int16 // nexthop indices behind Possible (IPv4)
	devL       *link   // the links behind Dev and IIF (for their JSON names)
	iifL       *link
	fibMatch   bool
	fib        *FIB
	ref        routeRef // the route used
}

const (
	hasUID uint32 = 1 << iota
	hasCache
	hasProtocol
	hasScope
	hasMetric
	hasPref
)

// Nexthop is one path of a multipath route or a possible choice.
type Nexthop struct {
	Gateway netip.Addr
	Dev     string
	Weight  int
	Flags   uint32
	PrefSrc netip.Addr
}

// Otherwise is the kernel's answer under another hidden state.
type Otherwise struct {
	// If says which hidden state.
	If string
	// Answer is the answer's JSON object (the keys of AppendAnswerJSON).
	Answer []byte
	// Line is the answer in the words of Text's last line.
	Line string
}

// hasAnswer reports whether ans is r's answer or one of its Otherwise.
func (r *Result) hasAnswer(ans []byte) bool {
	c := *r
	c.Uncertain, c.Otherwise, c.Possible = nil, nil, nil
	if string(ans) == string(c.AppendAnswerJSON(nil)) {
		return true
	}
	for i := range r.Otherwise {
		if string(r.Otherwise[i].Answer) == string(ans) {
			return true
		}
	}
	return false
}

func (r *Result) hasUncertain(s string) bool {
	for _, u := range r.Uncertain {
		if u == s {
			return true
		}
	}
	return false
}

// OK reports whether the lookup succeeded.
func (r *Result) OK() bool { return r.Error == "" }

// Errno is the symbolic errno of a failed lookup ("ENETUNREACH", ...).
func (r *Result) Errno() string { return r.err.Name() }

// Route describes the FIB entry that was used, in `ip route` words, or ""
// when none was (errors, the oif fallback, ...).
func (r *Result) Route() string {
	if r.ref.at == nil {
		return ""
	}
	return string(r.fib.appendRoute(nil, &r.ref, true))
}

func (r *Result) reset(f *FIB, q *Query) {
	tr, nh, po, un, pn := r.Trace[:0], r.Nexthops[:0], r.Possible[:0], r.Uncertain[:0], r.possibleNH[:0]
	*r = Result{Query: *q, Trace: tr, Nexthops: nh, Possible: po, Uncertain: un, possibleNH: pn, Otherwise: r.Otherwise[:0], fib: f}
	r.Family = 4
	if q.To.Is6() && !q.To.Is4In6() {
		r.Family = 6
	}
}

func (r *Result) setDev(l *link) {
	r.devL = l
	r.Dev = linkNameOf(l)
}

func (r *Result) setIIF(l *link) {
	r.iifL = l
	r.IIF = linkNameOf(l)
}

func (r *Result) fail(e errno) {
	r.err = e
	r.Error = e.Message()
}

// failRule names the rule that ended a failed lookup (an error route or
// an unreachable/prohibit/blackhole rule), if any.
func (r *Result) failRule(list []crule, i int32) {
	if i >= 0 && int(i) < len(list) {
		r.HasRule, r.RulePref, r.RuleText = true, list[i].pref, list[i].text
	}
}

// failRoute4 records the error route that ended a failed lookup.
func (r *Result) failRoute4(res *fibres4, err errno) {
	if res.at != nil && res.at.err == err {
		r.ref = routeRef{t4: res.t, node: res.node, alias: res.alias, at: res.at, snode: -1}
	}
}

func (r *Result) addUncertain(s string) {
	if r == nil {
		return
	}
	for _, u := range r.Uncertain {
		if u == s {
			return
		}
	}
	r.Uncertain = append(r.Uncertain, s)
}

func (r *Result) setRule(f *FIB, res *fibres4, _ bool) {
	r.ref = routeRef{t4: res.t, node: res.node, alias: res.alias, nh: int32(res.nh), at: res.at, snode: -1}
	if res.rule >= 0 {
		cr := &f.v4.rules.list[res.rule]
		r.HasRule, r.RulePref, r.RuleText = true, cr.pref, cr.text
	} else {
		r.HasRule = false
	}
}

func (r *Result) setRule6(f *FIB, res *fibres6) {
	r.ref = routeRef{v6: true, t6: res.t, node: res.node, snode: res.snode, alias: res.alias, at: res.at}
	if res.rule >= 0 && int(res.rule) < len(res.rules) {
		cr := &res.rules[res.rule]
		r.HasRule, r.RulePref, r.RuleText = true, cr.pref, cr.text
	}
}

// routeRef points at one FIB entry.
type routeRef struct {
	v6    bool
	t4    *table4
	t6    *table6
	node  int32
	snode int32
	alias int32
	nh    int32
	at    *rattrs
}

// Step is one line of an explanation.
type Step struct {
	kind    uint8
	verdict verdict
	note    uint8
	table   uint32
	arg     int32
	addr    uint32 // the IPv4 address a note is about
	rule    *crule
	dev     *link
	ref     routeRef
}

const (
	stepRule = iota + 1
	stepTable
	stepNote
)

// IsRule reports whether the step is a rule that matched the flow.
func (s *Step) IsRule() bool { return s.kind == stepRule }

// Pref is the rule's priority (rule steps).
func (s *Step) Pref() uint32 {
	if s.rule == nil {
		return 0
	}
	return s.rule.pref
}

// Rule is the rule in `ip rule` words without the priority.
func (s *Step) Rule() string {
	if s.rule == nil {
		return ""
	}
	return s.rule.text
}

// Note is the text of a note step, or of a table step's remark.
func (s *Step) Note() string { return noteText[s.note] }

type verdict uint8

const (
	vNone verdict = iota
	vRoute
	vNoRoute
	vNoTable
	vThrow
	vErrorRoute
	vSuppressedPlen
	vSuppressedGroup
	vGoto
	vUnresolved
	vTargetNoMatch
	vNop
	vActionUnreachable
	vActionProhibit
	vActionBlackhole
)

var verdictText = [...]string{
	vNone: "", vRoute: "route", vNoRoute: "no route", vNoTable: "no such table", vThrow: "throw",
	vErrorRoute: "error route", vSuppressedPlen: "suppressed (prefix length)", vSuppressedGroup: "suppressed (device group)",
	vGoto: "goto", vUnresolved: "goto target missing: skipped", vTargetNoMatch: "goto target does not match",
	vNop: "nop", vActionUnreachable: "unreachable", vActionProhibit: "prohibit", vActionBlackhole: "blackhole",
}

// Verdict is what the step decided ("route", "no route", "throw", ...).
func (s *Step) Verdict() string { return verdictText[s.verdict] }

// tracer records steps into a Result; a nil tracer records nothing.
type tracer struct {
	r *Result
}

func (t *tracer) rule(i int32, c *crule, v verdict, table uint32, res *fibres4) {
	if t == nil || t.r == nil {
		return
	}
	s := Step{kind: stepRule, verdict: v, rule: c, table: table}
	if res != nil && res.at != nil {
		s.ref = routeRef{t4: res.t, node: res.node, alias: res.alias, nh: -1, at: res.at, snode: -1}
	}
	switch v {
	case vGoto, vUnresolved:
		s.arg = int32(c.gotoPref)
	case vSuppressedPlen:
		s.arg = c.supPlen
	case vSuppressedGroup:
		s.arg = int32(c.supGroup)
	}
	t.r.Trace = append(t.r.Trace, s)
}

func (t *tracer) rule6(i int32, c *crule, v verdict, table uint32, res *fibres6) {
	if t == nil || t.r == nil {
		return
	}
	s := Step{kind: stepRule, verdict: v, rule: c, table: table}
	switch v {
	case vSuppressedPlen:
		s.arg = c.supPlen
	case vSuppressedGroup:
		s.arg = int32(c.supGroup)
	}
	if res != nil && res.at != nil {
		s.ref = routeRef{v6: true, t6: res.t, node: res.node, snode: res.snode, alias: res.alias, nh: -1, at: res.at}
	}
	t.r.Trace = append(t.r.Trace, s)
}

func (t *tracer) table(id uint32, err errno, res *fibres4, merged bool) {
	if t == nil || t.r == nil {
		return
	}
	s := Step{kind: stepTable, table: id}
	switch err {
	case errOK:
		s.verdict = vRoute
	case errAGAIN:
		s.verdict = vNoRoute
		if res != nil && res.at != nil && res.typ == state.RouteThrow {
			s.verdict = vThrow
		}
	default:
		s.verdict = vErrorRoute
	}
	if res != nil && res.at != nil && s.verdict != vNoRoute {
		s.ref = routeRef{t4: res.t, node: res.node, alias: res.alias, nh: -1, at: res.at, snode: -1}
	}
	if merged {
		s.note = nMergedLookup
	}
	t.r.Trace = append(t.r.Trace, s)
}

func (t *tracer) note(n uint8) {
	if t == nil || t.r == nil {
		return
	}
	t.r.Trace = append(t.r.Trace, Step{kind: stepNote, note: n})
}

func (t *tracer) noteDev(n uint8, l *link) {
	if t == nil || t.r == nil {
		return
	}
	t.r.Trace = append(t.r.Trace, Step{kind: stepNote, note: n, dev: l})
}

func (t *tracer) noteAddr(n uint8, a uint32) {
	if t == nil || t.r == nil {
		return
	}
	t.r.Trace = append(t.r.Trace, Step{kind: stepNote, note: n, addr: a})
}

// Trace notes.
const (
	nNone uint8 = iota
	nMergedLookup
	nFromInvalid
	nFromNotLocal
	nFromDev
	nOifDown
	nOifLinkLocal
	nZeroDst
	nOifFallback
	nLoopbackSrc
	nMcNotJoined
	nMartianSrc
	nMartianDst
	nMartianLoopback
	nNoForwarding
	nNotUnicast
	nRPFail
	nLocalSource
)

var noteText = [...]string{
	nNone:            "",
	nMergedLookup:    "no IPv4 rule was ever changed: fast path, table local merged into main, then default",
	nFromInvalid:     "from is a multicast or broadcast address",
	nFromNotLocal:    "from is not an address of this host",
	nFromDev:         "multicast or broadcast destination with from: sent from the device holding the source, no lookup",
	nOifDown:         "oif device is down",
	nOifLinkLocal:    "oif with a link-local multicast or broadcast destination: no lookup",
	nZeroDst:         "destination 0.0.0.0 is this host",
	nOifFallback:     "no usable route through oif: the destination is assumed on-link there",
	nLoopbackSrc:     "a 127.0.0.0/8 source cannot leave through a non-loopback device",
	nMcNotJoined:     "multicast group not joined on the input device",
	nMartianSrc:      "martian source",
	nMartianDst:      "martian destination",
	nMartianLoopback: "127.0.0.0/8 on the input path without route_localnet",
	nNoForwarding:    "forwarding is disabled on the input device",
	nNotUnicast:      "the route is not unicast: not forwarded",
	nRPFail:          "source validation (reverse path) failed for",
	nLocalSource:     "the source is an address of this host (martian):",
}

// Uncertainty explanations.
const (
	noteMcGroup       = "multicast group membership is not in the snapshot: only the all-hosts group 224.0.0.1 is assumed joined"
	noteMpNeigh       = "fib_multipath_use_neigh is set: nexthops without a valid neighbour entry are skipped (the neighbour cache is not in the snapshot)"
	noteMpStaleBounds = "a linkdown nexthop on a device with ignore_routes_with_linkdown: the kernel's multipath bounds depend on the order of past events"
	noteDefaultNeigh  = "several default routes: the kernel prefers one whose gateway's ARP entry is reachable (the neighbour cache is not in the snapshot; with an empty cache the first is used)"
	noteCustomLocal   = "had a local route ever been added by hand in this namespace, the kernel would validate the source with a reverse lookup and reject it"
	noteMemberUnknown = "this member of an IPv6 multipath route has its own src, pref and mtu, which the dump does not show and no lookup could reveal; those of the route's first member are shown"
	noteL3mdev        = "the namespace has VRF (l3mdev) devices, which the simulator does not model: rules and source selection tied to a VRF may differ"
)

// Uncertainty notes a Result may carry (among others) that callers may
// want to recognise.
const (
	// UncertainMultipathHash: the multipath hash key is unknown; the
	// answer is one of Result.Possible.
	UncertainMultipathHash = "multipath: the kernel hashes the flow with a key the snapshot does not show (net.ipv4.fib_multipath_hash_seed is 0, or hash policy 3); the path is one of \"possible\""
	// UncertainMultipathValidation: forwarding over some of the possible
	// paths fails the source check (Invalid argument); Possible lists the
	// others.
	UncertainMultipathValidation = "multipath: the source check depends on the path the unknown hash picks; over the paths not listed in \"possible\" the kernel answers Invalid argument"
	// UncertainResilientGroup: the route uses a resilient nexthop group,
	// whose bucket table is not in the snapshot; the answer is one of
	// Result.Possible.
	UncertainResilientGroup = "multipath: the route uses a resilient nexthop group, which maps the flow's hash to a member by a bucket table the snapshot does not show; the path is one of \"possible\""
	// UncertainMemberPref: the members of the IPv6 multipath route have
	// different router preferences, and the one printed depends on the
	// lookups made before (Result.Otherwise lists the others).
	UncertainMemberPref = "the members of this IPv6 multipath route have different router preferences: the kernel prints that of the member chosen by the lookup that made its cached route (since the last route change), which may not be this one; \"otherwise\" lists the others"
	// UncertainOrphanSubtree: the answer is a source-specific IPv6 route
	// whose prefix has no plain route; whether the kernel finds it
	// depends on the order routes were added and deleted.
	UncertainOrphanSubtree = "the answer uses a source-specific IPv6 route whose prefix has no plain route: if it was added while the prefix had none, and a plain route was added and deleted since, the kernel no longer finds it (the answer is then the one \"otherwise\" shows)"
	// UncertainNexthopSource: the source comes from a nexthop object,
	// whose cached choice depends on when addresses last changed.
	UncertainNexthopSource = "the source is the one the nexthop object chose when it was made (with its own scope); if an IPv4 address changed in this namespace since, the kernel chooses again with the route's scope (the answer is then the one \"otherwise\" shows)"
	// UncertainSharedNexthop: several IPv6 routes use the answer's
	// nexthop object; the kernel's answer carries the attributes of the
	// one first looked up (Result.Otherwise lists the others).
	UncertainSharedNexthop = "several IPv6 routes use this nexthop object, and the kernel answers with the table, metric, protocol, pref and src of whichever of them was first looked up since the last route change (it caches one route per object and CPU); the answer assumes this one, \"otherwise\" lists the others"
	// UncertainGatewayScope: whether the gateway is used was decided
	// when the route was added.
	UncertainGatewayScope = "whether the kernel uses the gateway was decided when the route was added; with the routes derived from addresses it is used as shown, with all of today's routes it would not be (or the reverse)"
)

// appendTableName appends tableName(t) without allocating.
func appendTableName(b []byte, t uint32) []byte {
	switch t {
	case 255:
		return append(b, "local"...)
	case 254:
		return append(b, "main"...)
	case 253:
		return append(b, "default"...)
	case 0:
		return append(b, "unspec"...)
	}
	if t < uint32(len(smallTableNames)) {
		return append(b, smallTableNames[t]...)
	}
	return strconv.AppendUint(b, uint64(t), 10)
}

var smallTableNames = func() (t [1024]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return
}()

// tableName is iproute2's rtnl_rttable_n2a.
func tableName(t uint32) string {
	switch t {
	case 255:
		return "local"
	case 254:
		return "main"
	case 253:
		return "default"
	case 0:
		return "unspec"
	}
	return strconv.FormatUint(uint64(t), 10)
}

// protoName is iproute2's rtnl_rtprot_n2a with the stock rt_protos.
func protoName(p state.Protocol) string {
	switch p {
	case 0:
		return "unspec"
	case 1:
		return "redirect"
	case 2:
		return "kernel"
	case 3:
		return "boot"
	case 4:
		return "static"
	case 8:
		return "gated"
	case 9:
		return "ra"
	case 10:
		return "mrt"
	case 11:
		return "zebra"
	case 12:
		return "bird"
	case 13:
		return "dnrouted"
	case 14:
		return "xorp"
	case 15:
		return "ntk"
	case 16:
		return "dhcp"
	case 18:
		return "keepalived"
	case 42:
		return "babel"
	case 99:
		return "openr"
	case 186:
		return "bgp"
	case 187:
		return "isis"
	case 188:
		return "ospf"
	case 189:
		return "rip"
	case 192:
		return "eigrp"
	}
	return strconv.Itoa(int(p))
}

func scopeName(s state.Scope) string {
	switch s {
	case 0:
		return "global"
	case 200:
		return "site"
	case 253:
		return "link"
	case 254:
		return "host"
	case 255:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

func prefName(p uint8) string {
	switch p {
	case 0:
		return "medium"
	case 1:
		return "high"
	case 3:
		return "low"
	}
	return strconv.Itoa(int(p))
}

var typeNames = [...]string{"unspec", "unicast", "local", "broadcast", "anycast", "multicast",
	"blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve"}

func typeName(t state.RouteType) string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return strconv.Itoa(int(t))
}

// flagName is one flag bit and the word ip prints for it.
type flagName struct {
	bit  uint32
	name string
}

// rtFlagNames is print_rt_flags' order.
var rtFlagNames = []flagName{
	{0x1, "dead"}, {0x4, "onlink"}, {0x2, "pervasive"}, {0x8, "offload"}, {0x40, "trap"},
	{0x100, "notify"}, {0x10, "linkdown"}, {0x20, "unresolved"}, {0x2000, "rt_offload"},
	{0x4000, "rt_trap"}, {0x20000000, "rt_offload_failed"},
}

// cacheFlagNames is print_cache_flags' order.
var cacheFlagNames = []flagName{
	{rtcfLocal, "local"}, {0x40000000, "reject"}, {rtcfMulticast, "mc"}, {rtcfBroadcast, "brd"},
	{0x08000000, "dst-nat"}, {0x00800000, "src-nat"}, {0x00400000, "masq"}, {0x00020000, "dst-direct"},
	{rtcfDirectSrc, "src-direct"}, {rtcfRedirected, "redirected"}, {rtcfDoRedirect, "redirect"},
	{0x00200000, "fastroute"}, {rtcfNotify, "notify"}, {0x00080000, "tproxy"},
}
