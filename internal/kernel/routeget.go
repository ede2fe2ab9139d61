package kernel

import (
	"errors"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// RouteQuery is what `tunroute check` asks the kernel to confirm a
// counterexample: the words of `ip route get` the kernel's RTM_GETROUTE
// takes from netlink's options (no ipproto or ports).
type RouteQuery struct {
	Dst, Src netip.Addr // Src invalid: none
	IIF      string
	UID      *uint32
	Mark     uint32
}

// RouteAnswer is the kernel's route for one packet.
type RouteAnswer struct {
	Dev string // "lo" for a local destination
	Src netip.Addr
	// Type is the route type: "unicast", "local", "broadcast", "multicast", ...
	Type string
}

// RouteGet asks the kernel of the handle's namespace for the route of
// one packet, like `ip route get`, or returns the kernel's error.
func (h *Handle) RouteGet(q RouteQuery) (RouteAnswer, error) {
	q.Dst, q.Src = q.Dst.Unmap(), q.Src.Unmap()
	c, err := h.lock()
	if err != nil {
		return RouteAnswer{}, err
	}
	defer h.mu.Unlock()
	iif := 0
	if q.IIF != "" {
		l, err := c.getLink(q.IIF, 0, -1)
		if err != nil {
			return RouteAnswer{}, err
		}
		iif = l.Index
	}
	bits := uint8(q.Dst.BitLen())
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	rtm := c.enc.zeros(unix.SizeofRtMsg)
	rtm[0] = family(q.Dst)
	rtm[1] = bits
	c.enc.addr(unix.RTA_DST, q.Dst)
	if q.Src.IsValid() {
		c.enc.b[off+nlmsgHdrLen+2] = bits // rtm_src_len
		c.enc.addr(unix.RTA_SRC, q.Src)
	}
	if iif != 0 {
		c.enc.u32(unix.RTA_IIF, uint32(iif))
	}
	if q.UID != nil {
		c.enc.u32(unix.RTA_UID, *q.UID)
	}
	if q.Mark != 0 {
		c.enc.u32(unix.RTA_MARK, q.Mark)
	}
	c.enc.end(off)
	var a RouteAnswer
	oif, got := 0, false
	err = c.do(seq, func(m message) error {
		if m.typ != unix.RTM_NEWROUTE || len(m.data) < unix.SizeofRtMsg {
			return nil
		}
		got = true
		a.Type = state.RouteType(m.data[7]).String()
		at := attrs{b: m.data[unix.SizeofRtMsg:]}
		for at.next() {
			switch at.typ {
			case unix.RTA_OIF:
				oif = int(at.u32())
			case unix.RTA_PREFSRC:
				a.Src = ipAddr(at.val)
			}
		}
		return nil
	})
	if err != nil {
		return RouteAnswer{}, err
	}
	if !got {
		return RouteAnswer{}, errors.New("no answer")
	}
	l, err := c.getLink("", oif, -1)
	if err != nil {
		return RouteAnswer{}, err
	}
	a.Dev = l.Name
	return a, nil
}
