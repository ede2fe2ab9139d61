package fib

import (
	"math/bits"
	"net/netip"
	"slices"

	"github.com/tunroute/tunroute/internal/state"
)

type addrLabel struct {
	p       pfx128
	label   uint32
	ifindex int
	typ     int // IPV6_ADDR_MAPPED/COMPATv4/LOOPBACK of the prefix
}

const labelDefault = 0xffffffff

// defaultLabels is the kernel's default address label table
// (net/ipv6/addrlabel.c), as `ip addrlabel list` shows it.
var defaultLabels = []struct {
	p     string
	label uint32
}{
	{"::1/128", 0}, {"::/96", 3}, {"::ffff:0.0.0.0/96", 4}, {"2001::/32", 6}, {"2001:10::/28", 7},
	{"3ffe::/16", 12}, {"2002::/16", 2}, {"fec0::/10", 11}, {"fc00::/7", 5}, {"::/0", 1},
}

func buildLabels(in []state.AddrLabel, f *FIB) []addrLabel {
	var out []addrLabel
	add := func(p netip.Prefix, label uint32, ifindex int) {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() && false {
			return
		}
		pp, err := toPfx128(netip.PrefixFrom(p.Addr(), p.Bits()).Masked(), true)
		if err != nil {
			return
		}
		if p.Bits() == 0 {
			pp = pfx128{}
		}
		hi, lo := split6(p.Addr())
		out = append(out, addrLabel{p: pp, label: label, ifindex: ifindex,
			typ: addrType6(hi, lo) & (v6Mapped | v6Compatv4 | v6Loopback)})
	}
	if len(in) == 0 {
		for _, d := range defaultLabels {
			add(netip.MustParsePrefix(d.p), d.label, 0)
		}
	} else {
		for _, l := range in {
			idx := 0
			if l.Dev != "" {
				if k := f.byName[l.Dev]; k != nil {
					idx = k.index
				} else {
					continue
				}
			}
			add(l.Prefix, l.Label, idx)
		}
	}
	// The kernel keeps the list sorted by prefix length, longest first,
	// device-specific entries before global ones.
	slices.SortStableFunc(out, func(a, b addrLabel) int {
		if a.p.bits != b.p.bits {
			return int(b.p.bits) - int(a.p.bits)
		}
		if (a.ifindex != 0) != (b.ifindex != 0) {
			if a.ifindex != 0 {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

func (f *FIB) label6(hi, lo uint64, typ, ifindex int) uint32 {
	typ &= v6Mapped | v6Compatv4 | v6Loopback
	for i := range f.labels {
		l := &f.labels[i]
		if l.ifindex != 0 && l.ifindex != ifindex {
			continue
		}
		if l.typ != 0 && l.typ != typ {
			continue
		}
		if !l.p.contains(hi, lo) {
			continue
		}
		return l.label
	}
	return labelDefault
}

func isOrchid(hi uint64) bool { return uint32(hi>>32)&0xfffffff0 == 0x20010010 }

// saddrScore is one candidate's evaluation, rule by rule, as in
// ipv6_get_saddr_eval (RFC 6724 section 5).
type saddrScore struct {
	a         *addr6
	rule      int
	scopedist int
	matchlen  int
	bits      uint32
}

const (
	ruleInit = iota
	ruleLocal
	ruleScope
	rulePreferred
	ruleOIF
	ruleLabel
	rulePrivacy
	ruleOrchid
	rulePrefix
	ruleNotOptimistic
	ruleMax
)

type saddrDst struct {
	hi, lo  uint64
	typ     int
	scope   int
	ifindex int
	label   uint32
}

func (f *FIB) saddrEval(s *saddrScore, d *saddrDst, i int) int {
	if i <= s.rule {
		switch i {
		case ruleScope:
			return s.scopedist
		case rulePrefix:
			return s.matchlen
		}
		return int(s.bits>>i) & 1
	}
	var ret int
	a := s.a
	switch i {
	case ruleInit:
		if a != nil {
			ret = 1
		}
	case ruleLocal:
		if a.hi == d.hi && a.lo == d.lo {
			ret = 1
		}
	case ruleScope:
		ret = a.scope
		if ret >= d.scope {
			ret = -ret
		} else {
			ret -= 128
		}
		s.scopedist = ret
	case rulePreferred:
		avoid := state.AddrDeprecated
		if !a.dev.useOptimistic {
			avoid |= state.AddrOptimistic
		}
		if a.typ&(v6Mapped|v6Compatv4|v6Loopback) != 0 || a.flags&avoid == 0 {
			ret = 1
		}
	case ruleOIF:
		if d.ifindex == 0 || d.ifindex == a.dev.index {
			ret = 1
		}
	case ruleLabel:
		if f.label6(a.hi, a.lo, a.typ, a.dev.index) == d.label {
			ret = 1
		}
	case rulePrivacy:
		preftmp := a.dev.useTempaddr >= 2
		temporary := a.flags&state.AddrSecondary != 0 // IFA_F_TEMPORARY
		if !temporary != preftmp {
			ret = 1
		}
	case ruleOrchid:
		if isOrchid(a.hi) == isOrchid(d.hi) {
			ret = 1
		}
	case rulePrefix:
		ret = commonPrefix(a.hi, a.lo, d.hi, d.lo)
		if ret > int(a.plen) {
			ret = int(a.plen)
		}
		s.matchlen = ret
	case ruleNotOptimistic:
		if a.flags&state.AddrOptimistic == 0 {
			ret = 1
		}
	}
	if ret != 0 {
		s.bits |= 1 << i
	}
	s.rule = i
	return ret
}

func commonPrefix(ahi, alo, bhi, blo uint64) int {
	if x := ahi ^ bhi; x != 0 {
		return bits.LeadingZeros64(x)
	}
	return 64 + bits.LeadingZeros64(alo^blo)
}

// devGetSaddr6 is ipv6_dev_get_saddr(dst_dev, daddr).
func (f *FIB) devGetSaddr6(dev *link, daddr netip.Addr, dhi, dlo uint64) (netip.Addr, bool) {
	dtyp := addrType6(dhi, dlo)
	d := saddrDst{hi: dhi, lo: dlo, typ: dtyp, scope: srcScope6(dtyp), ifindex: dev.index}
	d.label = f.label6(dhi, dlo, dtyp, dev.index)
	// Fast path: a global destination that is not an address of this host,
	// and dst_dev has exactly one preferred global address. Other
	// candidates tie with it at most up to rule 3 (scope, preferred) and
	// lose at rule 5 (outgoing interface), or lose earlier.
	if d.scope == scopeGlobal && dtyp&v6Multicast == 0 && dev.v6sole >= 0 && !dev.v6disabled {
		if _, local := f.localAddrs6[[2]uint64{dhi, dlo}]; !local {
			return dev.a6[dev.v6sole].addr, true
		}
	}
	hiscore := saddrScore{rule: -1}
	if dtyp&v6Multicast != 0 || d.scope <= scopeLink6 || dev.useOifAddrsOnly {
		f.devSaddrScan(dev, &d, &hiscore)
	} else {
		for _, l := range f.links {
			f.devSaddrScan(l, &d, &hiscore)
		}
	}
	if hiscore.a == nil {
		return netip.Addr{}, false
	}
	return hiscore.a.addr, true
}

func (f *FIB) devSaddrScan(l *link, d *saddrDst, hiscore *saddrScore) {
	if l.v6disabled {
		return
	}
	for k := range l.a6 {
		a := &l.a6[k]
		if a.flags&state.AddrTentative != 0 && a.flags&state.AddrOptimistic == 0 {
			continue
		}
		if a.flags&state.AddrDADFailed != 0 {
			continue
		}
		if a.typ == 0 || a.typ&v6Multicast != 0 {
			continue
		}
		score := saddrScore{a: a, rule: -1}
		for i := 0; i < ruleMax; i++ {
			hs := f.saddrEval(hiscore, d, i)
			ms := f.saddrEval(&score, d, i)
			if hs > ms {
				if i == ruleScope && score.scopedist > 0 {
					return
				}
				break
			} else if hs < ms {
				*hiscore = score
				break
			}
		}
	}
}
