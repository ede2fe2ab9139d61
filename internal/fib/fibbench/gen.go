// Package fibbench generates the full-table benchmark of explain: a host
// with four uplinks, n4 IPv4 routes with an Internet-like prefix-length
// mix, n6 IPv6 routes, and rules a plain query does not match, plus random
// queries. The same spec builds an in-memory state (package fib's
// benchmarks) and a network namespace (the kernel comparison in fibdiff).
package fibbench

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
)

// Route is one generated route.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	Uplink  int // 1-4: device upN
	Table   uint32
}

// Spec is a generated benchmark state.
type Spec struct {
	// Setup creates the links, addresses and default routes (ip words).
	Setup []string
	// Routes are the bulk routes.
	Routes []Route
	// Rules4 and Rules6 are `rule add` commands of each family.
	Rules4, Rules6 []string
}

// Gateway returns uplink n's gateway of the family.
func Gateway(n int, v6 bool) netip.Addr {
	if v6 {
		return netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::fe", n))
	}
	return netip.MustParseAddr(fmt.Sprintf("10.%d.0.254", n))
}

// Generate builds the spec. Prefix lengths follow the shares of a full
// table (IPv4 /24 60%, /22 12%, /23 10%, ...; IPv6 /48 45%, /32 10%, ...);
// 97% of the routes are in main, the rest in tables 100-103.
func Generate(seed uint64, n4, n6, nrules int) *Spec {
	rnd := rand.New(rand.NewPCG(seed, 7))
	s := &Spec{}
	for i := 1; i <= 4; i++ {
		s.Setup = append(s.Setup,
			fmt.Sprintf("link add up%d type veth peer name up%dp", i, i),
			fmt.Sprintf("link set up%d up", i),
			fmt.Sprintf("link set up%dp up", i),
			fmt.Sprintf("addr add 10.%d.0.1/24 dev up%d", i, i),
			fmt.Sprintf("addr add 2001:db8:%d::1/64 dev up%d nodad", i, i))
	}
	s.Setup = append(s.Setup, "route add default via 10.1.0.254", "route add default via 2001:db8:1::fe")
	mix4 := []struct{ bits, pct int }{{24, 60}, {23, 10}, {22, 12}, {21, 5}, {20, 4}, {19, 3}, {18, 2}, {17, 1}, {16, 2}, {12, 1}}
	mix6 := []struct{ bits, pct int }{{48, 45}, {32, 10}, {44, 8}, {40, 6}, {36, 5}, {29, 5}, {46, 5}, {47, 4}, {56, 6}, {64, 6}}
	pick := func(mix []struct{ bits, pct int }) int {
		x := rnd.IntN(100)
		for _, m := range mix {
			if x < m.pct {
				return m.bits
			}
			x -= m.pct
		}
		return mix[0].bits
	}
	table := func() uint32 {
		if rnd.IntN(100) < 97 {
			return 254
		}
		return 100 + uint32(rnd.IntN(4))
	}
	seen := make(map[netip.Prefix]bool, n4+n6)
	for len(s.Routes) < n4 {
		a := rnd.Uint32()
		first := a >> 24
		if first == 0 || first == 10 || first == 127 || first >= 224 {
			continue
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), pick(mix4)).Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		g := 1 + rnd.IntN(4)
		s.Routes = append(s.Routes, Route{Dst: p, Gateway: Gateway(g, false), Uplink: g, Table: table()})
	}
	for len(s.Routes) < n4+n6 {
		var b [16]byte
		hi := rnd.Uint64()
		for i := 0; i < 8; i++ {
			b[i] = byte(hi >> (56 - 8*i))
		}
		b[0] = 0x20 | b[0]&0x1f // 2000::/3
		if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8 {
			continue
		}
		p := netip.PrefixFrom(netip.AddrFrom16(b), pick(mix6)).Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		g := 1 + rnd.IntN(4)
		s.Routes = append(s.Routes, Route{Dst: p, Gateway: Gateway(g, true), Uplink: g, Table: table()})
	}
	// Per-source identities, marks, per-destination overrides, input
	// interfaces and users: rules a plain `route get` does not match.
	for i := 0; i < nrules; i++ {
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
		if i%10 == 9 {
			s.Rules6 = append(s.Rules6, r)
		} else {
			s.Rules4 = append(s.Rules4, r)
		}
	}
	return s
}

// RouteCommands renders the bulk routes as `ip -batch` lines.
func (s *Spec) RouteCommands() []string {
	out := make([]string, len(s.Routes))
	for i, r := range s.Routes {
		out[i] = fmt.Sprintf("route add %s via %s dev up%d table %d", r.Dst, r.Gateway, r.Uplink, r.Table)
	}
	return out
}

// Queries draws n `route get` lines: 80% IPv4, half of them inside a
// routed prefix of main, half anywhere in the unicast space.
func (s *Spec) Queries(seed uint64, n int) []string {
	rnd := rand.New(rand.NewPCG(seed, 11))
	var p4, p6 []netip.Prefix
	for _, r := range s.Routes {
		if r.Table != 254 {
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
			b := p.Addr().As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			v |= rnd.Uint32() & (1<<(32-p.Bits()) - 1)
			a = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		case !v6:
			x := rnd.Uint32()
			if x>>24 == 0 || x>>24 >= 224 || x>>24 == 127 {
				continue
			}
			a = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		case inside:
			p := p6[rnd.IntN(len(p6))]
			b := p.Addr().As16()
			for i := p.Bits(); i < 128; i++ {
				if rnd.IntN(2) == 1 {
					b[i/8] |= 0x80 >> (i % 8)
				}
			}
			a = netip.AddrFrom16(b)
		default:
			var b [16]byte
			for i := range b {
				b[i] = byte(rnd.IntN(256))
			}
			b[0] = 0x20 | b[0]&0x1f
			a = netip.AddrFrom16(b)
		}
		out = append(out, "route get "+a.String())
	}
	return out
}
