package fib

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// bigState builds the benchmark state of issue 3: n4 IPv4 routes with an
// Internet-like prefix-length mix and n6 IPv6 routes (mostly in main, some
// in tables 100-103), nrules rules (10% IPv6) that a plain query does not
// match, on a host with four uplinks. It also returns the commands that
// build the same state with `ip -batch` (links and addresses first).
func bigState(seed uint64, n4, n6, nrules int) (*state.State, []string, []string) {
	rnd := rand.New(rand.NewPCG(seed, 7))
	k := newKState(nopTB{})
	var setup []string
	ip := func(cmd string) {
		k.ip(cmd)
		setup = append(setup, cmd)
	}
	for i := 1; i <= 4; i++ {
		ip(fmt.Sprintf("link add up%d type veth peer name up%dp", i, i))
		ip(fmt.Sprintf("link set up%d up", i))
		ip(fmt.Sprintf("link set up%dp up", i))
		ip(fmt.Sprintf("addr add 10.%d.0.1/24 dev up%d", i, i))
		ip(fmt.Sprintf("addr add 2001:db8:%d::1/64 dev up%d nodad", i, i))
	}
	ip("route add default via 10.1.0.254")
	ip("route add default via 2001:db8:1::fe")
	s := k.state()
	// IPv4 prefix lengths of a full table (approximate shares, in %)
	mix4 := []struct{ bits, pct int }{{24, 60}, {23, 10}, {22, 12}, {21, 5}, {20, 4}, {19, 3}, {18, 2}, {17, 1}, {16, 2}, {12, 1}}
	mix6 := []struct{ bits, pct int }{{48, 45}, {32, 10}, {44, 8}, {40, 6}, {36, 5}, {29, 5}, {46, 5}, {47, 4}, {56, 6}, {64, 6}}
	pickLen := func(mix []struct{ bits, pct int }) int {
		x := rnd.IntN(100)
		for _, m := range mix {
			if x < m.pct {
				return m.bits
			}
			x -= m.pct
		}
		return mix[0].bits
	}
	seen4 := make(map[netip.Prefix]bool, n4)
	gw4 := []netip.Addr{netip.MustParseAddr("10.1.0.254"), netip.MustParseAddr("10.2.0.254"), netip.MustParseAddr("10.3.0.254"), netip.MustParseAddr("10.4.0.254")}
	gw6 := []netip.Addr{netip.MustParseAddr("2001:db8:1::fe"), netip.MustParseAddr("2001:db8:2::fe"), netip.MustParseAddr("2001:db8:3::fe"), netip.MustParseAddr("2001:db8:4::fe")}
	table := func() uint32 {
		if rnd.IntN(100) < 97 {
			return state.TableMain
		}
		return 100 + uint32(rnd.IntN(4))
	}
	var cmds []string
	for len(seen4) < n4 {
		a := rnd.Uint32()
		first := a >> 24
		if first == 0 || first == 10 || first == 127 || first >= 224 {
			continue
		}
		p := netip.PrefixFrom(u4(a), pickLen(mix4)).Masked()
		if seen4[p] {
			continue
		}
		seen4[p] = true
		g := rnd.IntN(4)
		t := table()
		s.Routes = append(s.Routes, state.Route{Table: t, Type: state.RouteUnicast, Dst: p, Protocol: 3,
			Nexthops: []state.Nexthop{{Gateway: gw4[g], Dev: fmt.Sprintf("up%d", g+1), Index: 3 + 2*g}}})
		cmds = append(cmds, fmt.Sprintf("route add %s via %s table %d", p, gw4[g], t))
	}
	seen6 := make(map[netip.Prefix]bool, n6)
	for len(seen6) < n6 {
		var b [16]byte
		hi := rnd.Uint64()
		for i := 0; i < 8; i++ {
			b[i] = byte(hi >> (56 - 8*i))
		}
		b[0] = 0x20 | b[0]&0x1f // 2000::/3
		if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8 {
			continue
		}
		p := netip.PrefixFrom(netip.AddrFrom16(b), pickLen(mix6)).Masked()
		if seen6[p] {
			continue
		}
		seen6[p] = true
		g := rnd.IntN(4)
		t := table()
		s.Routes = append(s.Routes, state.Route{Table: t, Type: state.RouteUnicast, Dst: p, Protocol: 3, Metric: 1024,
			Nexthops: []state.Nexthop{{Gateway: gw6[g], Dev: fmt.Sprintf("up%d", g+1), Index: 3 + 2*g}}})
		cmds = append(cmds, fmt.Sprintf("route add %s via %s table %d", p, gw6[g], t))
	}
	// Rules a plain query does not match: per-source identities, marks,
	// per-destination overrides, input interfaces and users.
	var rules4, rules6 []string
	for i := 0; i < nrules; i++ {
		v6 := i%10 == 9
		pref := 1000 + i*20
		t := 100 + i%4
		var sel string
		switch i % 10 {
		case 0, 1, 2, 3, 4:
			sel = fmt.Sprintf("from 10.%d.%d.0/24", 100+i/256%100, i%256)
		case 5:
			sel = fmt.Sprintf("fwmark 0x%x/0xffff", 0x1000+i)
		case 6:
			sel = fmt.Sprintf("to 198.51.100.%d/32", i%256)
		case 7:
			sel = fmt.Sprintf("iif up%dp", 1+i%4)
		case 8:
			sel = fmt.Sprintf("uidrange %d-%d", 10000+i, 10000+i)
		case 9:
			sel = fmt.Sprintf("from 2001:db8:%x::/48", 0x100+i)
		}
		r := fmt.Sprintf("rule add pref %d %s lookup %d", pref, sel, t)
		if v6 {
			rules6 = append(rules6, r)
		} else {
			rules4 = append(rules4, r)
		}
		k.ruleAdd(strings.Fields(r)[2:], v6)
	}
	s.Rules = k.state().Rules
	t := true
	s.Hidden.RulesModified = &t
	var all []string
	all = append(all, cmds...)
	for _, r := range rules4 {
		all = append(all, "-4 "+r)
	}
	for _, r := range rules6 {
		all = append(all, "-6 "+r)
	}
	return s, setup, all
}

// bigQueries draws n queries: 80% IPv4, half inside a routed prefix, half
// anywhere in the unicast space.
func bigQueries(s *state.State, seed uint64, n int) []string {
	rnd := rand.New(rand.NewPCG(seed, 11))
	var p4, p6 []netip.Prefix
	for _, r := range s.Routes {
		if r.Table != state.TableMain || r.Dst.Bits() == 0 {
			continue
		}
		if r.Dst.Addr().Is4() {
			p4 = append(p4, r.Dst)
		} else {
			p6 = append(p6, r.Dst)
		}
	}
	out := make([]string, 0, n)
	for len(out) < n {
		var a netip.Addr
		v6 := rnd.IntN(100) < 20 && len(p6) > 0
		inside := rnd.IntN(2) == 0
		switch {
		case !v6 && inside && len(p4) > 0:
			p := p4[rnd.IntN(len(p4))]
			a = u4(v4u(p.Addr()) | rnd.Uint32()&^mask4(p.Bits()))
		case !v6:
			x := rnd.Uint32()
			if x>>24 == 0 || x>>24 >= 224 || x>>24 == 127 {
				continue
			}
			a = u4(x)
		case inside:
			p := p6[rnd.IntN(len(p6))]
			hi, lo := split6(p.Addr())
			mh, ml := mask6(p.Bits())
			a = join6(hi|rnd.Uint64()&^mh, lo|rnd.Uint64()&^ml)
		default:
			a = join6(0x2000<<48|rnd.Uint64()>>3, rnd.Uint64())
		}
		out = append(out, "route get "+a.String())
	}
	return out
}

// nopTB lets kstate run outside a test.
type nopTB struct{}

type testingTB interface {
	Helper()
	Fatalf(string, ...any)
}

func (nopTB) Helper() {}
func (nopTB) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
