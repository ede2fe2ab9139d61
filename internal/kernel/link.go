package kernel

import (
	"errors"
	"fmt"
	"net"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// ErrNotFound is wrapped by lookups that find nothing.
var ErrNotFound = errors.New("not found")

var operStates = [...]string{"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"}

// linkInfo is a decoded RTM_NEWLINK plus what is needed to name a veth peer.
type linkInfo struct {
	state.Link
	peerIndex int   // IFLA_LINK
	peerNSID  int32 // IFLA_LINK_NETNSID, -1 if the peer is in this namespace
}

func decodeLink(data []byte) (linkInfo, bool) {
	if len(data) < unix.SizeofIfInfomsg {
		return linkInfo{}, false
	}
	flags := ne.Uint32(data[8:])
	l := linkInfo{peerNSID: -1}
	l.Index = int(int32(ne.Uint32(data[4:])))
	l.Up = flags&unix.IFF_UP != 0
	l.Carrier = flags&unix.IFF_LOWER_UP != 0
	l.Loopback = flags&unix.IFF_LOOPBACK != 0
	l.NoARP = flags&unix.IFF_NOARP != 0
	l.PointToPoint = flags&unix.IFF_POINTOPOINT != 0
	a := attrs{b: data[unix.SizeofIfInfomsg:]}
	for a.next() {
		switch a.typ {
		case unix.IFLA_IFNAME:
			l.Name = a.str()
		case unix.IFLA_MTU:
			l.MTU = int(a.u32())
		case unix.IFLA_GROUP:
			l.Group = a.u32()
		case unix.IFLA_MASTER:
			l.Master = int(a.u32())
		case unix.IFLA_IFALIAS:
			l.Alias = a.str()
		case unix.IFLA_OPERSTATE:
			if s := int(a.u8()); s < len(operStates) {
				l.OperState = operStates[s]
			} else {
				l.OperState = fmt.Sprint(s)
			}
		case unix.IFLA_ADDRESS:
			if len(a.val) > 0 {
				l.HardwareAddr = net.HardwareAddr(a.val).String()
			}
		case unix.IFLA_LINK:
			l.peerIndex = int(a.u32())
		case unix.IFLA_LINK_NETNSID:
			l.peerNSID = int32(a.u32())
		case unix.IFLA_LINKINFO:
			in := attrs{b: a.val}
			for in.next() {
				if in.typ == unix.IFLA_INFO_KIND {
					l.Kind = in.str()
				}
			}
		}
	}
	l.L3MDev = l.Kind == "vrf"
	return l, true
}

// dumpLinks lists the namespace's links in device-list order.
func (c *conn) dumpLinks() ([]linkInfo, error) {
	var out []linkInfo
	err := retryDump(func() error {
		out = out[:0]
		seq := c.nextSeq()
		c.enc.reset()
		off := c.enc.begin(unix.RTM_GETLINK, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
		c.enc.zeros(unix.SizeofIfInfomsg)
		c.enc.u32(unix.IFLA_EXT_MASK, rtextSkipStats)
		c.enc.end(off)
		return c.dump(seq, func(m message) error {
			if m.typ != unix.RTM_NEWLINK {
				return nil
			}
			if l, ok := decodeLink(m.data); ok {
				out = append(out, l)
			}
			return nil
		})
	})
	return out, err
}

// getLink asks for one link by name or index; targetNSID >= 0 looks in the
// namespace with that id (IFLA_TARGET_NETNSID) instead of this one.
func (c *conn) getLink(name string, index int, targetNSID int32) (linkInfo, error) {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_GETLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	hdr := c.enc.zeros(unix.SizeofIfInfomsg)
	ne.PutUint32(hdr[4:], uint32(index))
	if name != "" {
		c.enc.str(unix.IFLA_IFNAME, name)
	}
	if targetNSID >= 0 {
		c.enc.u32(iflaTargetNetnsID, uint32(targetNSID))
	}
	c.enc.u32(unix.IFLA_EXT_MASK, rtextSkipStats)
	c.enc.end(off)
	var l linkInfo
	found := false
	err := c.do(seq, func(m message) error {
		if m.typ == unix.RTM_NEWLINK {
			l, found = decodeLink(m.data)
		}
		return nil
	})
	if errors.Is(err, unix.ENODEV) || (err == nil && !found) {
		what := name
		if what == "" {
			what = fmt.Sprintf("index %d", index)
		}
		return l, fmt.Errorf("device %s: %w", what, ErrNotFound)
	}
	return l, err
}

// LinkByName returns the link called name, wrapping ErrNotFound if there is
// none.
func (h *Handle) LinkByName(name string) (*state.Link, error) {
	c, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	l, err := c.getLink(name, 0, -1)
	if err != nil {
		return nil, err
	}
	if l.Kind == "veth" && l.peerIndex > 0 && l.peerNSID < 0 {
		if p, err := c.getLink("", l.peerIndex, -1); err == nil {
			l.Peer = p.Name
		}
	}
	return &l.Link, nil
}

// resolvePeers names the other end of each veth: in this namespace, or in a
// named one (found through its netns id).
func (c *conn) resolvePeers(links []linkInfo) {
	byIndex := make(map[int]string, len(links))
	for _, l := range links {
		byIndex[l.Index] = l.Name
	}
	var nsids map[int32]string
	for i := range links {
		l := &links[i]
		if l.Kind != "veth" || l.peerIndex <= 0 {
			continue
		}
		if l.peerNSID < 0 {
			l.Peer = byIndex[l.peerIndex]
			continue
		}
		if nsids == nil {
			var err error
			if nsids, err = c.nsidNames(); err != nil {
				nsids = map[int32]string{}
			}
		}
		ns, ok := nsids[l.peerNSID]
		if !ok {
			continue // the peer's namespace has no name (the initial one, say)
		}
		if p, err := c.getLink("", l.peerIndex, l.peerNSID); err == nil {
			l.Peer, l.PeerNamespace = p.Name, ns
		}
	}
}

// retryDump repeats a dump the kernel flagged as interrupted.
func retryDump(fn func() error) error {
	var err error
	for range 5 {
		if err = fn(); !errors.Is(err, errDumpInterrupted) {
			return err
		}
	}
	return err
}
