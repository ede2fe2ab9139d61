package kernel

import (
	"errors"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// RouteQuery is one packet to ask the kernel's route for: the words of
// `ip route get` that RTM_GETROUTE takes from netlink's options.
type RouteQuery struct {
	Dst, Src   netip.Addr // Src invalid: none
	IIF, OIF   string
	UID        *uint32
	Mark       uint32
	TOS        uint8
	IPProto    uint8
	HasIPProto bool
	SPort      uint16
	DPort      uint16
}

// RouteAnswer is the kernel's route for one packet.
type RouteAnswer struct {
	Dev string // "lo" for a local destination
	Src netip.Addr
	// Type is the route type: "unicast", "local", "broadcast", "multicast", ...
	Type      string
	RouteType state.RouteType
	Gateway   netip.Addr
	// Table is the table whose route the lookup chose.
	Table uint32
}

// RouteGet asks the kernel of the handle's namespace for the route of
// one packet, like `ip route get`, or returns the kernel's error.
func (h *Handle) RouteGet(q RouteQuery) (RouteAnswer, error) {
	return (&RouteAsker{h: h}).RouteGet(q)
}

// RouteMatch asks the kernel which route its lookup of one packet
// chooses, like `ip route get ... fibmatch`: the route as a dump shows
// it, with the table it is in.
func (h *Handle) RouteMatch(q RouteQuery) (state.Route, error) {
	return (&RouteAsker{h: h}).RouteMatch(q)
}

// RouteAsker asks the kernel of a handle's namespace route queries (a
// batch of them), reading its links and nexthop objects once, for the
// names of the devices and the nexthops in the answers, instead of once a
// query. A device the first read did not know is asked for.
type RouteAsker struct {
	h     *Handle
	names *devNames
	nhs   setNexthops
}

// NewRouteAsker reads the links and nexthop objects for the queries to
// come.
func (h *Handle) NewRouteAsker() (*RouteAsker, error) {
	a := &RouteAsker{h: h}
	c, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	return a, a.read(c)
}

// read reads the links and nexthop objects, once.
func (a *RouteAsker) read(c *conn) error {
	if a.names != nil {
		return nil
	}
	links, err := c.dumpLinks()
	if err != nil {
		return err
	}
	if a.nhs, err = c.ownNexthops(); err != nil {
		return err
	}
	a.names = newDevNames(links)
	return nil
}

// RouteGet is Handle.RouteGet.
func (a *RouteAsker) RouteGet(q RouteQuery) (RouteAnswer, error) {
	c, err := a.h.lock()
	if err != nil {
		return RouteAnswer{}, err
	}
	defer a.h.mu.Unlock()
	var ans RouteAnswer
	oif := 0
	err = c.routeGet(q, 0, func(data []byte) {
		ans.RouteType = state.RouteType(data[7])
		ans.Type = ans.RouteType.String()
		ans.Table = uint32(data[4])
		at := attrs{b: data[unix.SizeofRtMsg:]}
		for at.next() {
			switch at.typ {
			case unix.RTA_OIF:
				oif = int(at.u32())
			case unix.RTA_PREFSRC:
				ans.Src = ipAddr(at.val)
			case unix.RTA_GATEWAY:
				ans.Gateway = ipAddr(at.val)
			case unix.RTA_VIA:
				if len(at.val) > sizeofRtVia {
					ans.Gateway = ipAddr(at.val[sizeofRtVia:])
				}
			case unix.RTA_TABLE:
				ans.Table = at.u32()
			}
		}
	})
	if err != nil {
		return RouteAnswer{}, err
	}
	if a.names != nil {
		ans.Dev = a.names.name(oif)
	}
	if ans.Dev == "" {
		l, err := c.getLink("", oif, -1)
		if err != nil {
			return RouteAnswer{}, err
		}
		ans.Dev = l.Name
	}
	return ans, nil
}

// RouteMatch is Handle.RouteMatch.
func (a *RouteAsker) RouteMatch(q RouteQuery) (state.Route, error) {
	c, err := a.h.lock()
	if err != nil {
		return state.Route{}, err
	}
	defer a.h.mu.Unlock()
	if err := a.read(c); err != nil {
		return state.Route{}, err
	}
	var r state.Route
	var pool nhPool
	decoded := false
	err = c.routeGet(q, unix.RTM_F_FIB_MATCH, func(data []byte) {
		decoded = decodePlainRoute(data, &r, a.names, &pool, a.nhs)
	})
	if err == nil && !decoded {
		err = errors.New("the kernel's route could not be read")
	}
	return r, err
}

// routeGet sends one RTM_GETROUTE for q with the rtm_flags extra (and,
// IPv4, RTM_F_LOOKUP_TABLE: the answer names the table the lookup used)
// and hands the answer's RTM_NEWROUTE to got.
func (c *conn) routeGet(q RouteQuery, extra uint32, got func(data []byte)) error {
	q.Dst, q.Src = q.Dst.Unmap(), q.Src.Unmap()
	iif, oif := 0, 0
	for _, dev := range []struct {
		name  string
		index *int
	}{{q.IIF, &iif}, {q.OIF, &oif}} {
		if dev.name == "" {
			continue
		}
		l, err := c.getLink(dev.name, 0, -1)
		if err != nil {
			return err
		}
		*dev.index = l.Index
	}
	bits := uint8(q.Dst.BitLen())
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	rtm := c.enc.zeros(unix.SizeofRtMsg)
	rtm[0] = family(q.Dst)
	rtm[1] = bits
	rtm[3] = q.TOS
	if rtm[0] == unix.AF_INET {
		// IPv6 refuses the flag; its answer names the route's table anyway.
		extra |= unix.RTM_F_LOOKUP_TABLE
	}
	ne.PutUint32(rtm[8:], extra)
	c.enc.addr(unix.RTA_DST, q.Dst)
	if q.Src.IsValid() {
		c.enc.b[off+nlmsgHdrLen+2] = bits // rtm_src_len
		c.enc.addr(unix.RTA_SRC, q.Src)
	}
	if iif != 0 {
		c.enc.u32(unix.RTA_IIF, uint32(iif))
	}
	if oif != 0 {
		c.enc.u32(unix.RTA_OIF, uint32(oif))
	}
	if q.UID != nil {
		c.enc.u32(unix.RTA_UID, *q.UID)
	}
	if q.Mark != 0 {
		c.enc.u32(unix.RTA_MARK, q.Mark)
	}
	if q.HasIPProto {
		c.enc.u8(unix.RTA_IP_PROTO, q.IPProto)
	}
	if q.SPort != 0 {
		c.enc.be16(unix.RTA_SPORT, q.SPort)
	}
	if q.DPort != 0 {
		c.enc.be16(unix.RTA_DPORT, q.DPort)
	}
	c.enc.end(off)
	answered := false
	err := c.do(seq, func(m message) error {
		if m.typ == unix.RTM_NEWROUTE && len(m.data) >= unix.SizeofRtMsg {
			answered = true
			got(m.data)
		}
		return nil
	})
	if err == nil && !answered {
		err = errors.New("no answer")
	}
	return err
}
