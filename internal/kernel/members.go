package kernel

import (
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// The members of an IPv6 multipath route are routes of their own in the
// kernel, each with its preferred source (src) and router preference
// (pref), but a route dump shows one route with the first member's src
// and pref for all. A `route get fibmatch` answer, though, is the member
// the lookup chose, with its own src and pref, listed first among the
// nexthops. learnMembers asks such lookups, with flows that vary the
// multipath hash, until every member has answered (or it gives up on the
// ones no lookup reaches: Member.Unknown).

const (
	rtmFFibMatch     = 0x2000 // RTM_F_FIB_MATCH
	rtaIPProto       = 27     // RTA_IP_PROTO
	rtaSport         = 28     // RTA_SPORT
	rtaDport         = 29     // RTA_DPORT
	probesPerMember  = 24
	maxMemberProbes  = 20000 // per snapshot: a bound for tables full of multipath routes
	memberProbeProto = unix.IPPROTO_UDP
)

// memberAnswer is what a fibmatch answer says about the chosen member.
type memberAnswer struct {
	table   uint32
	dst     netip.Prefix
	src     netip.Prefix
	metric  uint32
	prefsrc netip.Addr
	pref    uint8
	mtu     uint32
	first   state.Nexthop // the chosen member
	n       int           // members listed
}

// learnMembers fills Nexthops[i].Member (i >= 1) of the IPv6 multipath
// routes (not nexthop objects) in routes. rules are the IPv6 rules, used
// to reach tables that only some flows look up.
func (c *conn) learnMembers(routes []state.Route, rules []state.Rule, d *devNames) {
	budget := maxMemberProbes
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range routes {
		r := &routes[i]
		if !r.Is6() || len(r.Nexthops) < 2 || r.NHID != 0 || r.Type != state.RouteUnicast {
			continue
		}
		missing := len(r.Nexthops) - 1
		for k := 1; k < len(r.Nexthops); k++ {
			r.Nexthops[k].Member = &state.Member{PrefSrc: r.PrefSrc, Pref: r.Pref, MTU: r.MTU, Unknown: true}
		}
		keys := probeKeys(r, rules, d)
		for try := 0; missing > 0 && try < probesPerMember*len(r.Nexthops) && budget > 0; try++ {
			budget--
			key := keys[try%len(keys)]
			ans, ok := c.fibMatch6(r, key, rnd, d)
			if !ok {
				continue
			}
			if ans.table != r.Table || ans.dst != r.Dst.Masked() || ans.metric != r.Metric || ans.n != len(r.Nexthops) ||
				ans.src.Bits() != r.Src.Bits() || ans.src.Bits() > 0 && ans.src.Masked() != r.Src.Masked() {
				continue // another route answered
			}
			for k := 1; k < len(r.Nexthops); k++ {
				nh := &r.Nexthops[k]
				if nh.Gateway == ans.first.Gateway && nh.Index == ans.first.Index && nh.Member.Unknown {
					nh.Member = &state.Member{PrefSrc: ans.prefsrc, Pref: ans.pref, MTU: ans.mtu}
					missing--
				}
			}
		}
		// members like the route need no record of their own
		for k := 1; k < len(r.Nexthops); k++ {
			if m := r.Nexthops[k].Member; !m.Unknown && m.PrefSrc == r.PrefSrc && m.Pref == r.Pref && m.MTU == r.MTU {
				r.Nexthops[k].Member = nil
			}
		}
	}
}

// probeKey is what a probe sets besides its destination: the selectors of
// a rule that leads to the route's table.
type probeKey struct {
	mark uint32
	uid  uint32
	from netip.Prefix
	oif  int // ifindex
	iif  int // an input-path lookup from this device
}

func probeKeys(r *state.Route, rules []state.Rule, d *devNames) []probeKey {
	keys := []probeKey{{}}
	// A lookup with a member's device as oif prefers that member over
	// other routes of the prefix (a route of a better router preference
	// may otherwise always win).
	for _, nh := range r.Nexthops {
		if nh.Index > 0 && !slices.Contains(keys, probeKey{oif: nh.Index}) {
			keys = append(keys, probeKey{oif: nh.Index})
		}
	}
	// Input-path lookups from a few devices reach tables that rules
	// keep from locally generated lookups.
	for i, n := 0, 0; i < len(d.small) && n < 4; i++ {
		if d.small[i] != "" && d.small[i] != "lo" {
			keys = append(keys, probeKey{iif: i})
			n++
		}
	}
	for i := range rules {
		ru := &rules[i]
		if ru.Family != 6 || ru.Action != state.ActionLookup || ru.Table != r.Table || ru.Invert || ru.IIF != "" && ru.IIF != "lo" {
			continue
		}
		k := probeKey{mark: ru.Mark, from: ru.Src}
		for i, n := range d.small {
			if ru.OIF != "" && n == ru.OIF {
				k.oif = i
			}
		}
		if ru.UID != nil {
			k.uid = ru.UID.Start
		}
		if k != (probeKey{}) {
			keys = append(keys, k)
		}
	}
	return keys
}

func randomIn(p netip.Prefix, rnd *rand.Rand) netip.Addr {
	b := p.Masked().Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		if rnd.IntN(2) == 1 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	return netip.AddrFrom16(b)
}

func (c *conn) fibMatch6(r *state.Route, key probeKey, rnd *rand.Rand, d *devNames) (memberAnswer, bool) {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	h := c.enc.zeros(unix.SizeofRtMsg)
	h[0] = unix.AF_INET6
	h[1] = 128
	ne.PutUint32(h[8:], rtmFFibMatch)
	c.enc.addr(unix.RTA_DST, randomIn(r.Dst, rnd))
	src := key.from
	if r.Src.Bits() > 0 && (!src.IsValid() || src.Bits() < r.Src.Bits()) {
		src = r.Src
	}
	if !src.IsValid() && rnd.IntN(2) == 1 {
		// the default hash policy hashes addresses, not ports: vary the
		// source too when nothing constrains it
		src = netip.MustParsePrefix("2001:db8::/32")
	}
	if src.IsValid() && src.Bits() > 0 {
		h = c.enc.b[off+nlmsgHdrLen:]
		h[2] = 128
		c.enc.addr(unix.RTA_SRC, randomIn(src, rnd))
	}
	if key.mark != 0 {
		c.enc.u32(unix.RTA_MARK, key.mark)
	}
	if key.uid != 0 {
		c.enc.u32(unix.RTA_UID, key.uid)
	}
	if key.iif != 0 {
		c.enc.u32(unix.RTA_IIF, uint32(key.iif))
	}
	if key.oif != 0 && key.iif == 0 {
		c.enc.u32(unix.RTA_OIF, uint32(key.oif))
	}
	c.enc.u8(rtaIPProto, memberProbeProto)
	c.enc.be16(rtaSport, uint16(1+rnd.IntN(65535)))
	c.enc.be16(rtaDport, uint16(1+rnd.IntN(65535)))
	c.enc.end(off)
	var ans memberAnswer
	got := false
	err := c.do(seq, func(m message) error {
		if m.typ != unix.RTM_NEWROUTE || len(m.data) < unix.SizeofRtMsg {
			return nil
		}
		var rt state.Route
		var pool nhPool
		if !decodeRoute(m.data, &rt, d, &pool) || len(rt.Nexthops) == 0 {
			return nil
		}
		ans = memberAnswer{table: rt.Table, dst: rt.Dst.Masked(), src: rt.Src, metric: rt.Metric,
			prefsrc: rt.PrefSrc, pref: rt.Pref, mtu: rt.MTU, first: rt.Nexthops[0], n: len(rt.Nexthops)}
		got = true
		return nil
	})
	return ans, err == nil && got
}
