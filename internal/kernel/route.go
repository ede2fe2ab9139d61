package kernel

import (
	"fmt"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

const (
	sizeofRtVia        = 2 // struct rtvia before the address
	sizeofRtaCacheinfo = 32
	userHZ             = 100 // clock_t units of rta_cacheinfo.rta_expires
	rtnhSettable       = state.NexthopOnlink
)

// devNames maps ifindex to the name of the link, sharing one string per
// link among all routes.
type devNames struct {
	small []string // by index, for the usual small indexes
	other map[int]string
}

func newDevNames(links []linkInfo) *devNames {
	d := &devNames{other: map[int]string{}}
	for _, l := range links {
		if l.Index >= 0 && l.Index < 1<<16 {
			for len(d.small) <= l.Index {
				d.small = append(d.small, "")
			}
			d.small[l.Index] = l.Name
		} else {
			d.other[l.Index] = l.Name
		}
	}
	return d
}

func (d *devNames) name(i int) string {
	if i >= 0 && i < len(d.small) {
		return d.small[i]
	}
	return d.other[i]
}

// nhPool hands out one-element (or longer) nexthop slices carved from big
// blocks, so a million routes do not mean a million allocations.
type nhPool struct{ buf []state.Nexthop }

func (p *nhPool) take(n int) []state.Nexthop {
	if len(p.buf) < n {
		p.buf = make([]state.Nexthop, max(n, 4096))
	}
	s := p.buf[:n:n]
	p.buf = p.buf[n:]
	return s
}

// decodePlainRoute decodes an RTM_NEWROUTE into r as decodeRoute does, then
// turns a route through one of tunroute's nexthop objects (nhs) into the
// plain route it stands for, as the dumps and the route cache show it.
func decodePlainRoute(data []byte, r *state.Route, d *devNames, pool *nhPool, nhs setNexthops) bool {
	if !decodeRoute(data, r, d, pool) {
		return false
	}
	nhs.translate(r, d, pool)
	return true
}

// decodeRoute decodes an RTM_NEWROUTE into r. It returns false for
// messages of other families.
func decodeRoute(data []byte, r *state.Route, d *devNames, pool *nhPool) bool {
	if len(data) < unix.SizeofRtMsg {
		return false
	}
	af := data[0]
	if af != unix.AF_INET && af != unix.AF_INET6 {
		return false
	}
	*r = state.Route{
		TOS:      data[3],
		Table:    uint32(data[4]),
		Protocol: state.Protocol(data[5]),
		Scope:    state.Scope(data[6]),
		Type:     state.RouteType(data[7]),
		Flags:    state.NexthopFlags(ne.Uint32(data[8:])),
	}
	var dst, src, gw netip.Addr
	oif := 0
	var multipath []byte
	a := attrs{b: data[unix.SizeofRtMsg:]}
	for a.next() {
		switch a.typ {
		case unix.RTA_DST:
			dst = ipAddr(a.val)
		case unix.RTA_SRC:
			src = ipAddr(a.val)
		case unix.RTA_OIF:
			oif = int(a.u32())
		case unix.RTA_GATEWAY:
			gw = ipAddr(a.val)
		case unix.RTA_VIA:
			if len(a.val) > sizeofRtVia {
				gw = ipAddr(a.val[sizeofRtVia:])
			}
		case unix.RTA_PRIORITY:
			r.Metric = a.u32()
		case unix.RTA_PREFSRC:
			r.PrefSrc = ipAddr(a.val)
		case unix.RTA_TABLE:
			r.Table = a.u32()
		case unix.RTA_METRICS:
			m := attrs{b: a.val}
			for m.next() {
				if m.typ == unix.RTAX_MTU {
					r.MTU = m.u32()
				}
			}
		case unix.RTA_MULTIPATH:
			multipath = a.val
		case unix.RTA_PREF:
			r.Pref = a.u8()
		case unix.RTA_CACHEINFO:
			if len(a.val) >= sizeofRtaCacheinfo {
				r.Expires = expires(int32(ne.Uint32(a.val[8:])))
			}
		case rtaNHID:
			r.NHID = a.u32()
		}
	}
	if !dst.IsValid() {
		dst = zeroAddr(af)
	}
	r.Dst = netip.PrefixFrom(dst, int(data[1]))
	if srcLen := int(data[2]); srcLen > 0 && af == unix.AF_INET6 {
		if !src.IsValid() {
			src = netip.IPv6Unspecified()
		}
		r.Src = netip.PrefixFrom(src, srcLen)
	}
	switch {
	case multipath != nil:
		r.Nexthops = decodeMultipath(multipath, d, pool)
	case oif != 0 || gw.IsValid():
		nh := pool.take(1)
		nh[0] = state.Nexthop{Gateway: gw, Index: oif, Dev: d.name(oif), Flags: r.Flags & 0xff}
		r.Nexthops = nh
	}
	return true
}

// expires converts rta_expires (clock_t, negative once overdue) to whole
// seconds, rounding up so that an expiring route never reads as permanent.
func expires(v int32) uint32 {
	switch {
	case v == 0:
		return 0
	case v < 0:
		return 1
	}
	return uint32((int64(v) + userHZ - 1) / userHZ)
}

func decodeMultipath(b []byte, d *devNames, pool *nhPool) []state.Nexthop {
	n := 0
	for rest := b; len(rest) >= unix.SizeofRtNexthop; n++ {
		l := int(ne.Uint16(rest))
		if l < unix.SizeofRtNexthop || l > len(rest) {
			break
		}
		rest = rest[min(align4(l), len(rest)):]
	}
	out := pool.take(n)
	for i := 0; i < n; i++ {
		l := int(ne.Uint16(b))
		idx := int(int32(ne.Uint32(b[4:])))
		nh := &out[i]
		*nh = state.Nexthop{Flags: state.NexthopFlags(b[2]), Weight: int(b[3]) + 1, Index: idx, Dev: d.name(idx)}
		a := attrs{b: b[unix.SizeofRtNexthop:l]}
		for a.next() {
			switch a.typ {
			case unix.RTA_GATEWAY:
				nh.Gateway = ipAddr(a.val)
			case unix.RTA_VIA:
				if len(a.val) > sizeofRtVia {
					nh.Gateway = ipAddr(a.val[sizeofRtVia:])
				}
			}
		}
		b = b[min(align4(l), len(b)):]
	}
	return out
}

// RouteFilter selects routes for ObserveRoutes; zero fields match all.
type RouteFilter struct {
	// Family is 4, 6, or 0 for both.
	Family int
	// Table is a table number; 0 means every table.
	Table    uint32
	Protocol state.Protocol
}

func (f RouteFilter) families() []uint8 {
	switch f.Family {
	case 4:
		return []uint8{unix.AF_INET}
	case 6:
		return []uint8{unix.AF_INET6}
	}
	return []uint8{unix.AF_INET, unix.AF_INET6}
}

func (f RouteFilter) match(r *state.Route) bool {
	return (f.Table == 0 || r.Table == f.Table) && (f.Protocol == 0 || r.Protocol == f.Protocol)
}

// dumpRoutes appends the routes of one family that match f, in dump order.
// The kernel filters by table and protocol itself (strict checking), so a
// dump of tunroute's routes in one table skips the rest in the kernel.
// The messages are kept as they come (bytes, which the collector neither
// scans nor guards with write barriers) and decoded once at the end,
// straight into out grown to their number: a million routes are then
// never copied as state.Routes, which costs a tenth of a whole
// `explain --batch` when a collection is running (every pointer of a
// copied route goes through a write barrier), and growing one slice by
// doubling costs a third more.
func (c *conn) dumpRoutes(out []state.Route, af uint8, f RouteFilter, d *devNames, nhs setNexthops) ([]state.Route, error) {
	var raw rawMessages
	err := retryDump(func() error {
		raw.reset()
		seq := c.routeDumpRequest(af, f.Table, f.Protocol)
		err := c.dump(seq, func(m message) error {
			if m.typ == unix.RTM_NEWROUTE {
				raw.add(m.data)
			}
			return nil
		})
		if e, ok := err.(*Error); ok && e.Errno == unix.ENOENT && f.Table != 0 {
			return nil // no such table: no routes
		}
		return err
	})
	if err != nil {
		return out, err
	}
	if n := len(out) + raw.n; n > cap(out) {
		// A quarter more than needed: a full observation dumps IPv4,
		// then appends IPv6 (a full table has a fifth as many), which
		// then fits without a second copy of a million routes. Pages
		// of the spare capacity are not touched unless used.
		grown := make([]state.Route, len(out), n+n/4)
		adviseHuge(grown)
		copy(grown, out)
		out = grown
	}
	var pool nhPool
	raw.each(func(data []byte) {
		out = append(out, state.Route{})
		r := &out[len(out)-1]
		if !decodeRoute(data, r, d, &pool) || !f.match(r) || r.Flags&unix.RTM_F_CLONED != 0 {
			out = out[:len(out)-1]
		} else {
			nhs.translate(r, d, &pool)
		}
	})
	return out, nil
}

// rawMessages keeps netlink message payloads in large blocks, each
// preceded by its length.
type rawMessages struct {
	blocks [][]byte
	n      int
}

const rawBlockSize = 4 << 20

func (m *rawMessages) reset() { m.blocks, m.n = m.blocks[:0], 0 }

func (m *rawMessages) add(data []byte) {
	need := 4 + len(data)
	if len(m.blocks) == 0 || cap(m.blocks[len(m.blocks)-1])-len(m.blocks[len(m.blocks)-1]) < need {
		b := make([]byte, 0, max(rawBlockSize, need))
		adviseHuge(b)
		m.blocks = append(m.blocks, b)
	}
	b := &m.blocks[len(m.blocks)-1]
	*b = ne.AppendUint32(*b, uint32(len(data)))
	*b = append(*b, data...)
	m.n++
}

// each calls fn for each payload, in the order added; data is valid
// until the messages are reset.
func (m *rawMessages) each(fn func(data []byte)) {
	for _, b := range m.blocks {
		for len(b) >= 4 {
			l := int(ne.Uint32(b))
			fn(b[4 : 4+l])
			b = b[4+l:]
		}
	}
}

// compatTable is the rtm_table byte for a table number; larger numbers
// travel in RTA_TABLE.
// routeDumpRequest encodes in c.enc a dump of the routes of family af and
// returns its sequence number. A kernel with strict checking sends only
// those of table (0: every table) and protocol (0: any); an older one
// sends all, and the caller filters.
func (c *conn) routeDumpRequest(af uint8, table uint32, proto state.Protocol) uint32 {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
	h := c.enc.zeros(unix.SizeofRtMsg)
	h[0] = af
	if c.strict {
		h[4] = compatTable(table)
		h[5] = uint8(proto)
		if table != 0 {
			c.enc.u32(unix.RTA_TABLE, table)
		}
	}
	c.enc.end(off)
	return seq
}

func compatTable(t uint32) uint8 {
	if t < 256 {
		return uint8(t)
	}
	return unix.RT_TABLE_COMPAT
}

// ObserveRoutes returns the routes that match f, in dump order. With a
// table and tunroute's protocol it reads only tunroute's routes of that
// table, however big the other tables are.
func (h *Handle) ObserveRoutes(f RouteFilter) ([]state.Route, error) {
	c, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	links, err := c.dumpLinks()
	if err != nil {
		return nil, fmt.Errorf("%s: links: %w", h.describe(), err)
	}
	d := newDevNames(links)
	nhs, err := c.ownNexthops()
	if err != nil {
		return nil, fmt.Errorf("%s: nexthop objects: %w", h.describe(), err)
	}
	var out []state.Route
	for _, af := range f.families() {
		if out, err = c.dumpRoutes(out, af, f, d, nhs); err != nil {
			return nil, fmt.Errorf("%s: routes: %w", h.describe(), err)
		}
	}
	return out, nil
}

// encodeRoute appends an RTM_NEWROUTE or RTM_DELROUTE for r. ifindex[i]
// is the resolved device of r.Nexthops[i] (0 for none).
func (e *encoder) encodeRoute(act state.Action, r *state.Route, ifindex []int, seq uint32) error {
	if !r.Dst.IsValid() {
		return fmt.Errorf("route has no destination")
	}
	v6 := r.Is6()
	typ, flags, ok := request(act, unix.RTM_NEWROUTE, unix.RTM_DELROUTE)
	if !ok {
		return fmt.Errorf("unknown action %d", act)
	}
	table := r.Table
	if table == 0 {
		table = state.TableMain
	}
	off := e.begin(typ, flags, seq)
	h := e.zeros(unix.SizeofRtMsg)
	h[0] = family(r.Dst.Addr())
	h[1] = uint8(r.Dst.Bits())
	h[3] = r.TOS
	h[4] = compatTable(table)
	h[5] = uint8(r.Protocol)
	h[7] = uint8(r.Type)
	if act == state.Delete {
		h[6] = unix.RT_SCOPE_NOWHERE // any scope
	} else {
		h[6] = uint8(r.Scope)
		if len(r.Nexthops) == 1 {
			ne.PutUint32(h[8:], uint32((r.Flags|r.Nexthops[0].Flags)&rtnhSettable))
		}
	}
	e.u32(unix.RTA_TABLE, table)
	e.dstAt = 0
	if r.Dst.Bits() > 0 {
		e.dstAt = len(e.b) - off + 4
		e.addr(unix.RTA_DST, r.Dst.Addr())
	}
	if v6 && r.Src.IsValid() && r.Src.Bits() > 0 {
		h = e.b[off+nlmsgHdrLen:]
		h[2] = uint8(r.Src.Bits())
		e.addr(unix.RTA_SRC, r.Src.Addr())
	}
	if r.Metric != 0 {
		e.u32(unix.RTA_PRIORITY, r.Metric)
	}
	if act != state.Delete {
		if r.PrefSrc.IsValid() {
			e.addr(unix.RTA_PREFSRC, r.PrefSrc)
		}
		switch {
		case r.NHID != 0:
			e.u32(rtaNHID, r.NHID)
		case len(r.Nexthops) == 1:
			if ifindex[0] != 0 {
				e.u32(unix.RTA_OIF, uint32(ifindex[0]))
			}
			e.gateway(r.Nexthops[0].Gateway, v6)
		case len(r.Nexthops) > 1:
			mp := e.nest(unix.RTA_MULTIPATH)
			ne.PutUint16(e.b[mp+2:], unix.RTA_MULTIPATH) // not flagged nested: rtnexthops are not attributes
			for i := range r.Nexthops {
				nh := &r.Nexthops[i]
				nhOff := len(e.b)
				rtnh := e.zeros(unix.SizeofRtNexthop)
				rtnh[2] = uint8(nh.Flags & rtnhSettable)
				if nh.Weight > 1 {
					rtnh[3] = uint8(nh.Weight - 1)
				}
				ne.PutUint32(rtnh[4:], uint32(ifindex[i]))
				e.gateway(nh.Gateway, v6)
				ne.PutUint16(e.b[nhOff:], uint16(len(e.b)-nhOff))
			}
			e.endNest(mp)
		}
		if r.MTU != 0 {
			m := e.nest(unix.RTA_METRICS)
			e.u32(unix.RTAX_MTU, r.MTU)
			e.endNest(m)
		}
		if v6 && r.Pref != 0 {
			e.u8(unix.RTA_PREF, r.Pref)
		}
		if v6 && r.Expires != 0 {
			e.u32(unix.RTA_EXPIRES, r.Expires)
		}
	}
	e.end(off)
	return nil
}

// gateway appends RTA_GATEWAY, or RTA_VIA for an IPv4 route through an
// IPv6 gateway.
func (e *encoder) gateway(gw netip.Addr, v6 bool) {
	if !gw.IsValid() {
		return
	}
	if gw.Is4() || v6 {
		e.addr(unix.RTA_GATEWAY, gw)
		return
	}
	e.attrHdr(unix.RTA_VIA, sizeofRtVia+16)
	e.b = ne.AppendUint16(e.b, unix.AF_INET6)
	v := gw.As16()
	e.b = append(e.b, v[:]...)
	e.pad()
}
