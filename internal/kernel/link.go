package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// ErrNotFound is wrapped by lookups that find nothing.
var ErrNotFound = errors.New("not found")

var operStates = [...]string{"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"}

// linkInfo is a decoded RTM_NEWLINK plus what is needed to name a veth
// peer or a vxlan's underlay device.
type linkInfo struct {
	state.Link
	peerIndex int // IFLA_LINK
	// peerNSID is IFLA_LINK_NETNSID, -1 if absent: the namespace of a
	// veth's peer, or of a vxlan's underlay (its UDP socket and
	// IFLA_VXLAN_LINK) when that is not the device's own.
	peerNSID int32
	// underIndex is a vxlan's IFLA_VXLAN_LINK, an ifindex in the
	// underlay's namespace; 0 if none.
	underIndex int
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
			var data []byte
			in := attrs{b: a.val}
			for in.next() {
				switch in.typ {
				case unix.IFLA_INFO_KIND:
					l.Kind = in.str()
				case unix.IFLA_INFO_DATA:
					data = in.val
				}
			}
			switch {
			case l.Kind == "vxlan" && data != nil:
				l.VXLAN, l.underIndex = decodeVXLAN(data)
			case state.IsTunnelKind(l.Kind):
				l.Tunnel, l.underIndex = decodeTunnel(l.Kind, data)
			}
		}
	}
	l.L3MDev = l.Kind == "vrf"
	return l, true
}

// decodeVXLAN reads a vxlan's IFLA_INFO_DATA: its VNI, addresses and
// port, and the ifindex of its underlay device (IFLA_VXLAN_LINK, to be
// named by resolveLinks). The kernel reports a unicast remote and a
// multicast group alike as IFLA_VXLAN_GROUP(6), and leaves out unset
// addresses.
func decodeVXLAN(data []byte) (*state.VXLAN, int) {
	x := &state.VXLAN{}
	under := 0
	a := attrs{b: data}
	for a.next() {
		switch a.typ {
		case unix.IFLA_VXLAN_ID:
			x.VNI = a.u32()
		case unix.IFLA_VXLAN_GROUP, unix.IFLA_VXLAN_GROUP6:
			x.Remote = ipAddr(a.val)
		case unix.IFLA_VXLAN_LOCAL, unix.IFLA_VXLAN_LOCAL6:
			x.Local = ipAddr(a.val)
		case unix.IFLA_VXLAN_LINK:
			under = int(a.u32())
		case unix.IFLA_VXLAN_PORT:
			if len(a.val) >= 2 {
				x.Port = binary.BigEndian.Uint16(a.val)
			}
		}
	}
	return x, under
}

// dumpLinks lists the namespace's links in device-list order.
func (c *conn) dumpLinks() ([]linkInfo, error) {
	skipStats := func(e *encoder) { e.u32(unix.IFLA_EXT_MASK, rtextSkipStats) }
	return dumpAll(c, unix.RTM_GETLINK, unix.RTM_NEWLINK, unix.SizeofIfInfomsg, 0, skipStats, decodeLink)
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
	links := []linkInfo{l}
	c.resolveLinks(links)
	return &links[0].Link, nil
}

// resolveLinks names what the links refer to by index: the other end of
// each veth, in this namespace or in a named one (found through its netns
// id), and each vxlan's underlay device and namespace ("" this one,
// state.HostNamespace the initial one, else a name under /run/netns). A
// reference into a namespace that has no name (nor is the initial one)
// stays unnamed.
func (c *conn) resolveLinks(links []linkInfo) {
	byIndex := make(map[int]string, len(links))
	for _, l := range links {
		byIndex[l.Index] = l.Name
	}
	local := func(index int) string {
		if name, ok := byIndex[index]; ok {
			return name
		}
		if l, err := c.getLink("", index, -1); err == nil {
			return l.Name
		}
		return ""
	}
	var nsids map[int32]string
	names := func() map[int32]string {
		if nsids == nil {
			var err error
			if nsids, err = c.nsidNames(); err != nil {
				nsids = map[int32]string{}
			}
		}
		return nsids
	}
	for i := range links {
		l := &links[i]
		switch {
		case l.Kind == "veth" && l.peerIndex > 0:
			if l.peerNSID < 0 {
				l.Peer = local(l.peerIndex)
				continue
			}
			ns, ok := names()[l.peerNSID]
			if !ok || ns == state.HostNamespace {
				continue // the peer's namespace has no name (the initial one, say)
			}
			if p, err := c.getLink("", l.peerIndex, l.peerNSID); err == nil {
				l.Peer, l.PeerNamespace = p.Name, ns
			}
		case l.Tunnel != nil:
			if l.underIndex > 0 && l.peerNSID < 0 {
				l.Tunnel.Dev = local(l.underIndex)
			}
		case l.VXLAN != nil:
			if l.peerNSID < 0 {
				if l.underIndex > 0 {
					l.VXLAN.Dev = local(l.underIndex)
				}
				continue
			}
			ns, ok := names()[l.peerNSID]
			if !ok {
				continue
			}
			l.VXLAN.UnderlayNamespace = ns
			if l.underIndex > 0 {
				if p, err := c.getLink("", l.underIndex, l.peerNSID); err == nil {
					l.VXLAN.Dev = p.Name
				}
			}
		}
	}
}
