// Package fib simulates the Linux kernel's routing decision offline: given a
// state.State it answers what `ip route get` would answer, IPv4 and IPv6,
// and explains how (the rules tried and the route chosen).
//
// The semantics follow docs/fib-semantics.md (Linux 6.18, iproute2 6.1):
// policy rules with every selector and action, longest-prefix match with
// backtracking over TOS, metric, dead and linkdown nexthops, error and throw
// route types, the IPv4 output path (source checks, the oif fallback,
// preferred-source selection, multipath, local/broadcast/multicast) and
// input path (forwarding, reverse-path filter, martians), and the IPv6 rule
// walk, route selection (metric, router preference, oif strictness, source
// subtrees) and RFC 6724 source selection. Where the snapshot cannot
// determine the answer (fib-semantics.md §11) the Result says so in
// Uncertain instead of guessing silently.
//
// New precomputes everything: prefix tables (gaissmai/bart), rule indexes
// that skip rules whose selectors cannot match, and per-nexthop source
// addresses. A lookup does not allocate beyond its Result; LookupInto and
// the batch helpers reuse one.
package fib

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tunroute/tunroute/internal/state"
)

// FIB is a precomputed, read-only view of one namespace's routing state.
// It is safe for concurrent use.
type FIB struct {
	// missed counts the lookups that reached a table a partial FIB does
	// not hold (NewPartial), whatever became of their error.
	missed  atomic.Int64
	ns      string
	links   []*link // device-list order
	byIndex map[int]*link
	byName  map[string]*link
	lo      *link

	v4 family4
	v6 family6

	// nexthop objects by id, for fibmatch's nh_info
	nhObjects map[uint32]*state.NexthopObject

	// sysctls
	mpPolicy4, mpPolicy6 int
	mpSeed               uint32
	mpSeedKnown          bool
	mpUseNeigh           bool
	fwd6All              bool // net.ipv6.conf.all.forwarding
	ignoreLD6All         bool

	// hidden state (§11)
	rulesModified     *bool // nil: unknown
	customLocalRoutes bool  // a local route not derived from an address exists
	localAddrs4       map[uint32]*link
	localAddrs6       map[[2]uint64]struct{}
	addrText          map[netip.Addr]string // IPv6 gateways and local addresses
	labels            []addrLabel
	ruleDissect4      bool // some IPv4 rule uses ipproto/sport/dport (not iif lo)
	assumedRules      []string
	scratch           sync.Pool
	maxCursors        int
	buildNotes        []string
}

// link is one device with its addresses and effective per-device sysctls.
type link struct {
	index    int
	name     string
	jname    string // the name as a JSON string
	pos      int
	up       bool
	carrier  bool
	loopback bool
	group    uint32
	l3mdev   bool
	master   int

	a4 []addr4
	a6 []addr6
	// v6sole is the index in a6 of the device's only preferred global
	// address, or -1 (IPv6 source selection fast path).
	v6sole int

	// IPv4 devconf, already combined with "all" the way the kernel does.
	fwd4          bool
	rpFilter      int
	acceptLocal   bool
	routeLocalnet bool
	sendRedirects bool
	sharedMedia   bool
	srcValidMark  bool
	ignoreLD4     bool
	bcForwarding  bool

	// IPv6 devconf.
	v6disabled      bool
	ignoreLD6       bool
	useOifAddrsOnly bool
	useTempaddr     int
	useOptimistic   bool
}

type addr4 struct {
	local     uint32
	address   uint32 // IFA_ADDRESS: the peer for point-to-point, else local
	mask      uint32
	plen      uint8
	scope     uint8
	secondary bool
}

type addr6 struct {
	addr   netip.Addr
	hi, lo uint64
	plen   uint8
	flags  state.AddrFlags
	typ    int
	scope  int
	dev    *link
}

// New builds the simulator for s. It validates what it needs and never
// modifies s; s may be dropped afterwards.
func New(s *state.State) (*FIB, error) { return build(s, nil, nil) }

// build is New for a state whose tables leftOut4 and leftOut6 (of each
// family) were not read (NewPartial).
func build(s *state.State, leftOut4, leftOut6 []uint32) (*FIB, error) {
	if s == nil {
		return nil, fmt.Errorf("fib: nil state")
	}
	f := &FIB{
		ns:          s.Namespace,
		byIndex:     make(map[int]*link, len(s.Links)),
		byName:      make(map[string]*link, len(s.Links)),
		localAddrs4: map[uint32]*link{},
		localAddrs6: map[[2]uint64]struct{}{},
	}
	sys := sysctls(s.Sysctls)
	for i := range s.Links {
		l := &s.Links[i]
		if l.Name == "" || l.Index <= 0 {
			return nil, fmt.Errorf("fib: links[%d]: needs a name and a positive index", i)
		}
		if f.byName[l.Name] != nil || f.byIndex[l.Index] != nil {
			return nil, fmt.Errorf("fib: links[%d] %s: duplicate name or index", i, l.Name)
		}
		k := &link{index: l.Index, name: l.Name, pos: i, up: l.Up, carrier: l.Carrier,
			loopback: l.Loopback || l.Name == "lo" && l.Index == 1, group: l.Group,
			l3mdev: l.L3MDev, master: l.Master}
		k.conf(sys)
		k.jname = string(appendJSONString(nil, k.name))
		f.links = append(f.links, k)
		f.byIndex[k.index] = k
		f.byName[k.name] = k
		if k.loopback && f.lo == nil {
			f.lo = k
		}
		if l.L3MDev && !slices.Contains(f.assumedRules, noteL3mdev) {
			f.assumedRules = append(f.assumedRules, noteL3mdev)
		}
	}
	if f.lo == nil {
		// The kernel always has lo with ifindex 1; a state without it
		// (hand-written or compiled) still routes locally through it.
		f.lo = &link{index: 1, name: "lo", jname: `"lo"`, pos: -1, up: true, carrier: true, loopback: true}
		f.lo.conf(sys)
		if f.byIndex[1] == nil && f.byName["lo"] == nil {
			f.byIndex[1], f.byName["lo"] = f.lo, f.lo
		}
	}
	for i := range s.Addrs {
		a := &s.Addrs[i]
		l := f.byName[a.Dev]
		if l == nil {
			return nil, fmt.Errorf("fib: addrs[%d] %s: dev %q is not among links", i, a.Prefix, a.Dev)
		}
		if !a.Prefix.IsValid() {
			return nil, fmt.Errorf("fib: addrs[%d]: prefix is missing", i)
		}
		if a.Prefix.Addr().Is4() {
			local := v4u(a.Prefix.Addr())
			address := local
			if a.Peer.IsValid() && a.Peer.Addr().Is4() {
				address = v4u(a.Peer.Addr())
			}
			l.a4 = append(l.a4, addr4{local: local, address: address, mask: mask4(a.Prefix.Bits()),
				plen: uint8(a.Prefix.Bits()), scope: uint8(a.Scope), secondary: a.Flags&state.AddrSecondary != 0})
			if f.localAddrs4[local] == nil {
				f.localAddrs4[local] = l
			}
		} else {
			ad := a.Prefix.Addr().Unmap()
			if !ad.Is6() {
				continue
			}
			hi, lo := split6(ad)
			typ := addrType6(hi, lo)
			l.a6 = append(l.a6, addr6{addr: ad, hi: hi, lo: lo, plen: uint8(a.Prefix.Bits()),
				flags: a.Flags, typ: typ, scope: srcScope6(typ), dev: l})
			f.localAddrs6[[2]uint64{hi, lo}] = struct{}{}
		}
	}

	for _, l := range f.links {
		l.v6sole = -1
		n := 0
		for i := range l.a6 {
			a := &l.a6[i]
			if a.scope == scopeGlobal && a.typ&(v6Mapped|v6Compatv4|v6Loopback) == 0 &&
				a.flags&(state.AddrTentative|state.AddrDADFailed|state.AddrDeprecated|state.AddrOptimistic) == 0 {
				l.v6sole = i
				n++
			}
		}
		if n != 1 {
			l.v6sole = -1
		}
	}
	f.mpPolicy4 = sys.get("net.ipv4.fib_multipath_hash_policy", 0)
	f.mpPolicy6 = sys.get("net.ipv6.fib_multipath_hash_policy", 0)
	f.mpUseNeigh = sys.get("net.ipv4.fib_multipath_use_neigh", 0) != 0
	if v := sys.get("net.ipv4.fib_multipath_hash_seed", 0); v != 0 {
		f.mpSeed, f.mpSeedKnown = uint32(v), true
	} else if s.Hidden.MultipathHashSeed != nil {
		f.mpSeed, f.mpSeedKnown = *s.Hidden.MultipathHashSeed, true
	}
	f.fwd6All = sys.get("net.ipv6.conf.all.forwarding", 0) != 0
	f.ignoreLD6All = sys.get("net.ipv6.conf.all.ignore_routes_with_linkdown", 0) != 0
	f.rulesModified = s.Hidden.RulesModified

	f.labels = buildLabels(s.AddrLabels, f)
	f.nhObjects = map[uint32]*state.NexthopObject{}
	for i := range s.NexthopObjects {
		f.nhObjects[s.NexthopObjects[i].ID] = &s.NexthopObjects[i]
	}

	if err := f.buildRoutes(s); err != nil {
		return nil, err
	}
	f.leaveOut(leftOut4, leftOut6)
	if err := f.buildRules(s); err != nil {
		return nil, err
	}
	f.finishAttrs4()
	f.attrTexts()
	f.addrText = map[netip.Addr]string{}
	for _, l := range f.links {
		for i := range l.a6 {
			f.addrText[l.a6[i].addr] = l.a6[i].addr.String()
		}
	}
	for _, fam := range [][]rattrs{f.v4.attrs, f.v6.attrs} {
		for i := range fam {
			for _, nh := range fam[i].nhs {
				if nh.gw.Is6() {
					f.addrText[nh.gw] = nh.gw.String()
				}
			}
			if fam[i].prefsrc.Is6() {
				f.addrText[fam[i].prefsrc] = fam[i].prefsrc.String()
			}
		}
	}
	for i := range s.Routes {
		r := &s.Routes[i]
		if r.Type == state.RouteLocal && !r.Is6() && r.Protocol != state.ProtoKernel {
			f.customLocalRoutes = true
		}
	}
	f.scratch.New = func() any { return newScratch(f) }
	return f, nil
}

// Namespace is the namespace the state was taken from.
func (f *FIB) Namespace() string { return f.ns }

// sysctlMap reads the flat dotted-name map of a State.
type sysctlMap map[string]string

func sysctls(m map[string]string) sysctlMap { return sysctlMap(m) }

func (m sysctlMap) lookup(name string) (int, bool) {
	v, ok := m[name]
	if !ok {
		return 0, false
	}
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return n, true
}

func (m sysctlMap) get(name string, def int) int {
	if n, ok := m.lookup(name); ok {
		return n
	}
	return def
}

// conf reads the device's IPv4/IPv6 devconf and combines it with "all" as
// the kernel's IN_DEV_* macros do.
func (l *link) conf(m sysctlMap) {
	dev := strings.ReplaceAll(l.name, ".", "/")
	v4 := func(key string, def int) (all, d int) {
		all = m.get("net.ipv4.conf.all."+key, def)
		d = m.get("net.ipv4.conf."+dev+"."+key, m.get("net.ipv4.conf.default."+key, def))
		return
	}
	or := func(key string, def int) bool {
		a, d := v4(key, def)
		return a != 0 || d != 0
	}
	// forwarding: the device's own flag (setting "all" propagates to
	// every device); fall back to "all" when the device value is absent.
	if n, ok := m.lookup("net.ipv4.conf." + dev + ".forwarding"); ok {
		l.fwd4 = n != 0
	} else {
		l.fwd4 = m.get("net.ipv4.conf.all.forwarding", m.get("net.ipv4.ip_forward", 0)) != 0
	}
	a, d := v4("rp_filter", 0)
	l.rpFilter = max(a, d)
	l.acceptLocal = or("accept_local", 0)
	l.routeLocalnet = or("route_localnet", 0)
	l.sendRedirects = or("send_redirects", 1)
	l.sharedMedia = or("shared_media", 1)
	l.srcValidMark = or("src_valid_mark", 0)
	l.ignoreLD4 = or("ignore_routes_with_linkdown", 0)
	l.bcForwarding = or("bc_forwarding", 0)

	v6 := func(key string, def int) int {
		return m.get("net.ipv6.conf."+dev+"."+key, m.get("net.ipv6.conf.default."+key, def))
	}
	l.v6disabled = v6("disable_ipv6", 0) != 0
	l.ignoreLD6 = v6("ignore_routes_with_linkdown", 0) != 0 || m.get("net.ipv6.conf.all.ignore_routes_with_linkdown", 0) != 0
	l.useOifAddrsOnly = v6("use_oif_addrs_only", 0) != 0
	l.useTempaddr = v6("use_tempaddr", 0)
	l.useOptimistic = v6("optimistic_dad", 0) != 0 && v6("use_optimistic", 0) != 0
}

func (f *FIB) link(index int) *link {
	if index == 0 {
		return nil
	}
	return f.byIndex[index]
}

func (f *FIB) linkName(index int) string {
	if l := f.byIndex[index]; l != nil {
		return l.name
	}
	return ""
}

// ---- small address helpers ----

func v4u(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func mask4(bits int) uint32 {
	if bits <= 0 {
		return 0
	}
	if bits >= 32 {
		return 0xffffffff
	}
	return ^uint32(0) << (32 - bits)
}

func split6(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return
}

func join6(hi, lo uint64) netip.Addr {
	var b [16]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(hi)
		b[8+i] = byte(lo)
		hi >>= 8
		lo >>= 8
	}
	return netip.AddrFrom16(b)
}

func mask6(bits int) (hi, lo uint64) {
	switch {
	case bits <= 0:
		return 0, 0
	case bits < 64:
		return ^uint64(0) << (64 - bits), 0
	case bits == 64:
		return ^uint64(0), 0
	case bits < 128:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	}
	return ^uint64(0), ^uint64(0)
}

func isMulticast4(a uint32) bool      { return a&0xf0000000 == 0xe0000000 }
func isLocalMulticast4(a uint32) bool { return a&0xffffff00 == 0xe0000000 }
func isLbcast4(a uint32) bool         { return a == 0xffffffff }

// isZeronet4 is ipv4_is_zeronet: since Linux 5.3 ("Allow 0.0.0.0/8 as a
// valid address range") only 0.0.0.0 itself.
func isZeronet4(a uint32) bool  { return a == 0 }
func isLoopback4(a uint32) bool { return a&0xff000000 == 0x7f000000 }
