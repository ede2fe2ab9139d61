package verify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// Scenario is one state of the host to prove properties in: the routing
// state and firewall, and which devices are tunnels.
type Scenario struct {
	// Name says which tunnels are up ("work up, home down"); "" for a
	// single state.
	Name    string
	State   *state.State
	Tunnels []string
	// Up lists the identities up in this scenario; Identities maps every
	// identity of the config to its device.
	Up         []string
	Identities map[string]string
	// Current: the VPNs are up and down as the hooks last reported.
	Current bool
	// Policy is what the config says (built-in properties); nil for a
	// state without a config.
	Policy *Policy
}

// Cell is one class of packets that every scenario treats alike: Packet
// is an example, Fates its fate in each scenario (in order).
type Cell struct {
	Family int
	Packet Packet
	Fates  []Fate
	// Srcs are the source addresses the packet has on the wire, per scenario.
	Srcs  []netip.Addr
	sp    *space
	cube  *cube
	group *group
}

// Walk cuts the packet space of both families into cells that no rule,
// route, firewall rule, scenario or extra Match tells apart, and calls fn
// for each with its fate in every scenario. fn must not keep the Cell.
func Walk(scenarios []Scenario, extra []Match, fn func(*Cell)) error {
	evs := make([]*evaluator, len(scenarios))
	states := make([]*state.State, len(scenarios))
	for i, sc := range scenarios {
		ev, err := newEvaluator(sc.State, sc.Tunnels)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
		evs[i], states[i] = ev, sc.State
	}
	for _, fam := range []int{4, 6} {
		sp, err := buildSpace(fam, states, extra)
		if err != nil {
			return err
		}
		cell := Cell{Family: fam, Fates: make([]Fate, len(evs)), Srcs: make([]netip.Addr, len(evs)), sp: sp}
		for gi := range sp.groups {
			g := &sp.groups[gi]
			if fam == 6 && g.ivs[0][0].hi == 0 && g.ivs[0][0].lo>>32 == 0xffff {
				continue // IPv4-mapped: not a destination an IPv6 packet can have
			}
			cubes := sp.cubesFor(gi)
			for ci := range cubes {
				c := &cubes[ci]
				p := sp.packet(c)
				if fam == 6 && p.Src.Is4In6() {
					continue // an IPv4-mapped source: not an IPv6 packet's
				}
				p.Dst = g.rep(fam)
				if p.Src.IsValid() && !p.Forwarded() && p.Dst.Is4() != p.Src.Is4() {
					continue
				}
				cell.Packet, cell.cube, cell.group = p, c, g
				for i, ev := range evs {
					cell.Fates[i], cell.Srcs[i] = ev.fateSrc(&p)
				}
				fn(&cell)
			}
		}
	}
	return nil
}

// packet is the cube's example packet (without its destination): ICMP
// echo if the cube has ICMP, else UDP, else TCP, to a well-known port.
func (s *space) packet(c *cube) Packet {
	p := Packet{Family: s.fam}
	pick := func(a *ivAtoms, set bitset, prefer ...uint64) uint64 {
		for _, v := range prefer {
			if set.has(a.index(small(v))) {
				return v
			}
		}
		i := set.first()
		v := a.starts[i]
		if v.lo == 0 && v.hi == 0 && a.last(i) != v {
			v = v.add1()
		}
		return v.lo
	}
	icmp := uint64(1)
	echo := uint64(8)
	if s.fam == 6 {
		icmp, echo = 58, 128
	}
	p.Proto = uint8(pick(s.proto, c[dProto], icmp, 17, 6))
	p.SPort = uint16(pick(s.sport, c[dSPort], 40000, 0))
	p.DPort = uint16(pick(s.dport, c[dDPort], 0, 443, 53, 80, 22, 123))
	p.ICMPType = uint8(pick(s.icmp, c[dICMP], echo, 0))
	p.UID = uint32(pick(s.uid, c[dUID], 1000, 0))
	mi := c[dMark].first()
	if zero := s.mark.atom(0); c[dMark].has(zero) {
		mi = zero
	}
	p.Mark = s.mark.reps[mi]
	p.Cgroup = s.cgroup.names[c[dCgroup].first()]
	if iif := s.iif.names[c[dIIF].first()]; iif != "lo" {
		p.IIF = iif
	}
	si := c[dSrc].first()
	if p.Forwarded() {
		// A forwarded packet's example source: not a special address.
		c[dSrc].each(func(i int) bool {
			v := uAddr(s.src.starts[i], s.fam)
			for _, sp := range specials(s.fam) {
				if sp.Contains(v) {
					return true
				}
			}
			si = i
			return false
		})
	}
	if si == s.src.index(u128{}) && s.src.last(si) == (u128{}) && !p.Forwarded() {
		// No bound address: the route chooses it (p.Src stays invalid).
	} else {
		v := s.src.starts[si]
		if v.less(s.src.last(si)) && !s.localSrc[si] {
			v = v.add1()
		}
		p.Src = uAddr(v, s.fam)
	}
	return p
}

// Describe tells which packets the cell holds, dimension by dimension
// (only those the policy cuts), the destinations last.
func (c *Cell) Describe() string {
	sp, cu := c.sp, c.cube
	var w []string
	if c.Packet.Forwarded() {
		w = append(w, "forwarded")
	} else {
		w = append(w, "sent by this host")
	}
	w = append(w, fmt.Sprintf("IPv%d", c.Family))
	ivDims := []struct {
		d    int
		a    *ivAtoms
		name string
		addr bool
	}{{dSrc, sp.src, "from", true}, {dProto, sp.proto, "ipproto", false}, {dSPort, sp.sport, "sport", false},
		{dDPort, sp.dport, "dport", false}, {dICMP, sp.icmp, "icmp type", false}, {dUID, sp.uid, "uid", false}}
	for _, d := range ivDims {
		set := cu[d.d]
		if set.count() == d.a.n() {
			continue
		}
		if (d.d == dSPort || d.d == dDPort || d.d == dICMP) && set.count() == 1 && d.a.starts[set.first()] == (u128{}) && d.a.last(set.first()) == (u128{}) {
			continue // no ports (or no ICMP type) for this protocol
		}
		var parts []string
		set.each(func(i int) bool {
			lo, hi := d.a.starts[i], d.a.last(i)
			switch {
			case d.addr && lo == (u128{}) && hi == (u128{}) && !c.Packet.Forwarded():
				parts = append(parts, "(unbound)")
			case d.addr:
				parts = append(parts, rangeText(lo, hi, sp.fam)...)
			case lo == hi:
				if d.d == dProto {
					parts = append(parts, protoName(uint8(lo.lo)))
				} else {
					parts = append(parts, fmt.Sprint(lo.lo))
				}
			default:
				parts = append(parts, fmt.Sprintf("%d-%d", lo.lo, hi.lo))
			}
			return len(parts) < 8
		})
		if d.d == dProto && len(parts) > 6 {
			continue
		}
		w = append(w, d.name+" "+short(parts, 6))
	}
	if n := cu[dMark].count(); n < sp.mark.n() {
		var parts []string
		cu[dMark].each(func(i int) bool { parts = append(parts, fmt.Sprintf("0x%x", sp.mark.reps[i])); return true })
		w = append(w, "mark like "+short(parts, 4))
	}
	if n := cu[dCgroup].count(); n < len(sp.cgroup.names) {
		var parts []string
		cu[dCgroup].each(func(i int) bool {
			n := sp.cgroup.names[i]
			if n == "" {
				n = "(other)"
			}
			parts = append(parts, n)
			return true
		})
		w = append(w, "cgroup "+short(parts, 4))
	}
	if c.Packet.Forwarded() {
		var parts []string
		cu[dIIF].each(func(i int) bool { parts = append(parts, sp.iif.names[i]); return true })
		w = append(w, "iif "+short(parts, 6))
	}
	var dst []string
	for _, iv := range c.group.ivs {
		dst = append(dst, rangeText(iv[0], iv[1], sp.fam)...)
		if len(dst) > 6 {
			break
		}
	}
	w = append(w, "to "+short(dst, 6))
	return strings.Join(w, ", ")
}

func short(parts []string, n int) string {
	if len(parts) > n {
		return strings.Join(parts[:n], " ") + " ..."
	}
	return strings.Join(parts, " ")
}

// rangeText writes [lo, hi] as the fewest prefixes.
func rangeText(lo, hi u128, fam int) []string {
	width := 32
	if fam == 6 {
		width = 128
	}
	var out []string
	for !hi.less(lo) {
		bits := width
		for bits > 0 {
			p := netip.PrefixFrom(uAddr(lo, fam), bits-1).Masked()
			f, l := prefixRange(p)
			if f != lo || hi.less(l) {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(uAddr(lo, fam), bits)
		out = append(out, p.String())
		_, l := prefixRange(p)
		if l == maxAddr(fam) || len(out) > 8 {
			break
		}
		lo = l.add1()
	}
	return out
}

// FirewallTunnels are the devices tunroute's kill switch in st lets
// through as tunnels (its "in a tunnel" rules): how a snapshot without
// its config says which devices are tunnels.
func FirewallTunnels(st *state.State) []string {
	var out []string
	if st.Firewall == nil {
		return nil
	}
	for _, c := range st.Firewall.Chains {
		for _, r := range c.Rules {
			if r.Comment == "in a tunnel" && r.Verdict == "accept" {
				for _, d := range r.OIF {
					if !contains(out, d) {
						out = append(out, d)
					}
				}
			}
		}
	}
	return out
}
