package kernel

import (
	"errors"
	"fmt"
	"net"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// OpError is the failure of one op of Execute.
type OpError struct {
	// Index of the op in the slice given to Execute.
	Index int
	Op    state.Op
	// Err is the kernel's *Error (wrapping the errno) or a local reason.
	Err error
	// Later counts the ops after this one, sent in the same batch, that
	// failed as well.
	Later int
}

func (e *OpError) Error() string {
	s := e.Op.String() + ": " + e.Err.Error()
	if e.Later > 0 {
		s += fmt.Sprintf(" (and %d later ops of the same batch failed)", e.Later)
	}
	return s
}

func (e *OpError) Unwrap() error { return e.Err }

// Execute carries out ops in order. Routes, addresses and rules go to the
// kernel in batches of up to about a thousand messages per sendmsg; a link
// op goes on its own, and so does a firewall op, as one nf_tables
// transaction (nft.go). applied[i] is true exactly for the ops that took
// effect. After the first batch with a failure no further batch is sent,
// and the error (an *OpError) names the first failed op in iproute2 words
// with the kernel's reason. Ops after the failed one in the same batch
// were already handed to the kernel and may have taken effect; applied
// tells. Only if the socket itself fails (no answer, a lost receive
// buffer) is the outcome of that batch unknown: its ops stay false and the
// error says which ones.
func (h *Handle) Execute(ops []state.Op) (applied []bool, err error) {
	c, err := h.lock()
	if err != nil {
		return make([]bool, len(ops)), err
	}
	defer h.mu.Unlock()
	x := &executor{h: h, c: c, ops: ops, applied: make([]bool, len(ops))}
	// Device indexes can change between calls (a VPN daemon recreates its
	// tun device); start from a fresh view.
	h.devs = nil
	err = x.run()
	return x.applied, err
}

type executor struct {
	h       *Handle
	c       *conn
	ops     []state.Op
	applied []bool
	enc     encoder
	seqs    []uint32 // sequence number of each op of the current batch
	ifindex []int
}

func (x *executor) run() error {
	for i := 0; i < len(x.ops); {
		if x.ops[i].Link != nil {
			if err := x.link(i); err != nil {
				return &OpError{Index: i, Op: x.ops[i], Err: err}
			}
			x.applied[i] = true
			i++
			continue
		}
		if x.ops[i].Firewall != nil {
			// The rtnetlink batch before it is done (batch returns only
			// after the kernel's answers), so the order holds.
			if err := x.firewall(i); err != nil {
				return &OpError{Index: i, Op: x.ops[i], Err: err}
			}
			i++
			continue
		}
		next, err := x.batch(i)
		if err != nil {
			return err
		}
		i = next
	}
	return nil
}

// batch sends ops from start on, up to the next link op or the batch
// limits, and returns where the next batch starts.
func (x *executor) batch(start int) (int, error) {
	c := x.c
	x.enc.reset()
	x.seqs = x.seqs[:0]
	var local *OpError
	i := start
	lastOff := -1
	for ; i < len(x.ops) && x.ops[i].Link == nil && x.ops[i].Firewall == nil && len(x.seqs) < c.maxMsgs; i++ {
		mark := len(x.enc.b)
		seq, err := x.encode(&x.ops[i])
		if err != nil {
			x.enc.b = x.enc.b[:mark]
			local = &OpError{Index: i, Op: x.ops[i], Err: err}
			break
		}
		if len(x.enc.b) > c.maxBytes && len(x.seqs) > 0 {
			x.enc.b = x.enc.b[:mark] // goes into the next batch
			break
		}
		x.seqs = append(x.seqs, seq)
		lastOff = mark
	}
	n := len(x.seqs)
	if n > 0 {
		fl := ne.Uint16(x.enc.b[lastOff+6:])
		ne.PutUint16(x.enc.b[lastOff+6:], fl|unix.NLM_F_ACK)
		failed := map[int]*Error{}
		err := c.batch(x.enc.b, x.seqs[0], x.seqs[n-1], func(seq uint32, e *Error) {
			// Failures are rare; a scan also survives a wrapped counter.
			for k, s := range x.seqs {
				if s == seq {
					failed[start+k] = e
					break
				}
			}
		})
		if err != nil {
			return i, fmt.Errorf("ops %d-%d (%s ...): %w", start, start+n-1, x.ops[start], err)
		}
		first := -1
		for k := start; k < start+n; k++ {
			if failed[k] == nil {
				x.applied[k] = true
			} else if first < 0 {
				first = k
			}
		}
		if first >= 0 {
			return i, &OpError{Index: first, Op: x.ops[first], Err: failed[first], Later: len(failed) - 1}
		}
	}
	if local != nil {
		return i, local
	}
	return i, nil
}

// encode appends the message for one op to x.enc and returns its
// sequence number.
func (x *executor) encode(op *state.Op) (uint32, error) {
	switch {
	case op.Route != nil:
		r := op.Route
		x.ifindex = x.ifindex[:0]
		for j := range r.Nexthops {
			if op.Action == state.Delete {
				break // a delete names no device: it may be gone already
			}
			idx, err := x.dev(r.Nexthops[j].Dev, r.Nexthops[j].Index)
			if err != nil {
				return 0, err
			}
			x.ifindex = append(x.ifindex, idx)
		}
		seq := x.c.nextSeq()
		return seq, x.enc.encodeRoute(op.Action, r, x.ifindex, seq)
	case op.Addr != nil:
		idx, err := x.dev(op.Addr.Dev, op.Addr.Index)
		if err != nil {
			return 0, err
		}
		if idx == 0 {
			return 0, errors.New("address without a device")
		}
		seq := x.c.nextSeq()
		return seq, x.enc.encodeAddr(op.Action, op.Addr, idx, seq)
	case op.Rule != nil:
		seq := x.c.nextSeq()
		return seq, x.enc.encodeRule(op.Action, op.Rule, seq)
	}
	return 0, errors.New("the op names no object")
}

// dev resolves a device name (preferred: a desired state may carry a stale
// or zero index) or else takes the index as given.
func (x *executor) dev(name string, index int) (int, error) {
	if name == "" {
		return index, nil
	}
	if idx, ok := x.h.devs[name]; ok {
		return idx, nil
	}
	// Unknown or stale cache: read the device list again once.
	links, err := x.c.dumpLinks()
	if err != nil {
		return 0, fmt.Errorf("list devices: %w", err)
	}
	x.h.devs = make(map[string]int, len(links))
	for _, l := range links {
		x.h.devs[l.Name] = l.Index
	}
	if idx, ok := x.h.devs[name]; ok {
		return idx, nil
	}
	return 0, fmt.Errorf("device %q: %w", name, ErrNotFound)
}

// link creates or deletes one link and waits for the kernel's answer.
// A created link is brought up and given its alias by a second request
// (the kernel ignores IFLA_IFALIAS on creation, and a veth cannot be set
// up before both ends exist); if that fails the link stays, the op counts
// as applied and the error says so.
func (x *executor) link(i int) error {
	op := &x.ops[i]
	l := op.Link
	x.h.devs = nil // names and indexes change
	c := x.c
	peerNS := netns.None()
	switch op.Action {
	case state.Add:
		if l.Name == "" || l.Kind == "" {
			return errors.New("a new link needs a name and a kind")
		}
		switch {
		case l.Kind == "vxlan":
			if err := x.newVXLAN(l); err != nil {
				return err
			}
		default:
			if l.Kind == "veth" && l.PeerNamespace != "" {
				var err error
				if peerNS, err = openNamespace(l.PeerNamespace); err != nil {
					return err
				}
				defer peerNS.Close()
			}
			seq := c.nextSeq()
			c.enc.reset()
			if err := c.enc.encodeNewLink(l, newLinkArgs{peerNSFd: int(peerNS), nsFd: -1}, seq); err != nil {
				return err
			}
			if err := c.do(seq, nil); err != nil {
				return err
			}
		}
	case state.Delete:
		seq := c.nextSeq()
		c.enc.reset()
		off := c.enc.begin(unix.RTM_DELLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
		h := c.enc.zeros(unix.SizeofIfInfomsg)
		if l.Name != "" {
			c.enc.str(unix.IFLA_IFNAME, l.Name)
		} else {
			ne.PutUint32(h[4:], uint32(l.Index))
		}
		c.enc.end(off)
		return c.do(seq, nil)
	default:
		return fmt.Errorf("%s is not supported for links", op.Action)
	}
	if !l.Up && l.Alias == "" {
		return nil
	}
	x.applied[i] = true // the link exists now, whatever follows
	if err := c.setLink(l.Name, l.Up, l.Alias); err != nil {
		return fmt.Errorf("created, but setting it up failed: %w", err)
	}
	if l.Kind != "veth" {
		return nil
	}
	pc := c
	if peerNS.IsOpen() {
		var err error
		if pc, err = connIn(peerNS); err != nil {
			return fmt.Errorf("created, but the peer's namespace: %w", err)
		}
		defer pc.close()
	}
	if err := pc.setLink(l.Peer, l.Up, l.Alias); err != nil {
		return fmt.Errorf("created, but setting up peer %s failed: %w", l.Peer, err)
	}
	return nil
}

// newVXLAN creates a vxlan device in the handle's namespace. Its underlay
// (the UDP socket and the device it rides, IFLA_VXLAN_LINK) lives in the
// namespace the creating request comes from, so when the underlay is in
// another namespace the request goes out of a socket there, with the
// device named there, and IFLA_NET_NS_FD places the new device here:
// `ip link add NAME netns HERE type vxlan ... dev DEV` run in the
// underlay's namespace.
func (x *executor) newVXLAN(l *state.Link) error {
	v := l.VXLAN
	if v == nil || v.VNI == 0 || v.VNI >= 1<<24 {
		return errors.New("a vxlan needs a VNI from 1 to 16777215")
	}
	if !v.Remote.IsValid() && v.Dev == "" {
		return errors.New("a vxlan needs a remote address (or group) or an underlay device")
	}
	if v.Local.IsValid() && v.Remote.IsValid() && v.Local.Is4() != v.Remote.Is4() {
		return fmt.Errorf("vxlan local %s and remote %s are of different families", v.Local, v.Remote)
	}
	c := x.c
	args := newLinkArgs{peerNSFd: -1, nsFd: -1}
	if v.UnderlayNamespace != "" {
		under, err := openUnderlay(v.UnderlayNamespace)
		if err != nil {
			return fmt.Errorf("underlay: %w", err)
		}
		defer under.Close()
		same, err := sameNamespace(under, x.h.ns)
		if err != nil {
			return fmt.Errorf("underlay: %w", err)
		}
		if !same {
			if c, err = connIn(under); err != nil {
				return fmt.Errorf("underlay in %s: %w", underlayWord(v.UnderlayNamespace), err)
			}
			defer c.close()
			here := x.h.ns
			if !here.IsOpen() {
				if here, err = netns.Get(); err != nil {
					return fmt.Errorf("this network namespace: %w", err)
				}
				defer here.Close()
			}
			args.nsFd = int(here)
		}
	}
	if v.Dev != "" {
		u, err := c.getLink(v.Dev, 0, -1)
		if err != nil {
			if v.UnderlayNamespace != "" {
				return fmt.Errorf("underlay device in %s: %w", underlayWord(v.UnderlayNamespace), err)
			}
			return fmt.Errorf("underlay device: %w", err)
		}
		args.underIndex = u.Index
	}
	seq := c.nextSeq()
	c.enc.reset()
	if err := c.enc.encodeNewLink(l, args, seq); err != nil {
		return err
	}
	return c.do(seq, nil)
}

// setLink sets a link up (or leaves its state) and gives it an alias.
func (c *conn) setLink(name string, up bool, alias string) error {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_NEWLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	c.enc.ifinfo(up)
	c.enc.str(unix.IFLA_IFNAME, name)
	if alias != "" {
		c.enc.str(unix.IFLA_IFALIAS, alias)
	}
	c.enc.end(off)
	return c.do(seq, nil)
}

// underlayWord names a vxlan's underlay namespace in an error.
func underlayWord(name string) string {
	if name == state.HostNamespace {
		return "the initial network namespace"
	}
	return fmt.Sprintf("network namespace %q", name)
}

// newLinkArgs are what encodeNewLink needs beyond the link: namespace file
// descriptors (-1 for none) and resolved indexes.
type newLinkArgs struct {
	// peerNSFd is the namespace a veth's peer goes into.
	peerNSFd int
	// nsFd is the namespace the device itself goes into, when it is
	// not the one the request is sent in (IFLA_NET_NS_FD).
	nsFd int
	// underIndex is a vxlan's underlay device, in the namespace the
	// request is sent in; 0 for none.
	underIndex int
}

// vxlanPort is the port a vxlan gets when the state gives none: IANA's,
// not the kernel's own default (8472, Linux's from before the
// assignment), so that the two sites agree with other implementations.
const vxlanPort = 4789

// encodeNewLink appends an RTM_NEWLINK that creates l, down and without
// its alias (see link).
func (e *encoder) encodeNewLink(l *state.Link, args newLinkArgs, seq uint32) error {
	if l.Kind == "veth" && l.Peer == "" {
		return errors.New("a veth needs a peer name")
	}
	var hw net.HardwareAddr
	if l.HardwareAddr != "" {
		var err error
		if hw, err = net.ParseMAC(l.HardwareAddr); err != nil {
			return fmt.Errorf("address %q: %w", l.HardwareAddr, err)
		}
	}
	off := e.begin(unix.RTM_NEWLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL, seq)
	e.ifinfo(false)
	e.str(unix.IFLA_IFNAME, l.Name)
	if l.MTU > 0 {
		e.u32(unix.IFLA_MTU, uint32(l.MTU))
	}
	if l.Group != 0 {
		e.u32(unix.IFLA_GROUP, l.Group)
	}
	if hw != nil {
		e.attr(unix.IFLA_ADDRESS, hw)
	}
	if args.nsFd >= 0 {
		e.u32(unix.IFLA_NET_NS_FD, uint32(args.nsFd))
	}
	info := e.nest(unix.IFLA_LINKINFO)
	e.str(unix.IFLA_INFO_KIND, l.Kind)
	switch l.Kind {
	case "vxlan":
		v := l.VXLAN
		if v == nil {
			return errors.New("a vxlan needs its VXLAN settings")
		}
		data := e.nest(unix.IFLA_INFO_DATA)
		e.u32(unix.IFLA_VXLAN_ID, v.VNI)
		if v.Remote.IsValid() {
			if v.Remote.Is4() {
				e.addr(unix.IFLA_VXLAN_GROUP, v.Remote)
			} else {
				e.addr(unix.IFLA_VXLAN_GROUP6, v.Remote)
			}
		}
		if v.Local.IsValid() {
			if v.Local.Is4() {
				e.addr(unix.IFLA_VXLAN_LOCAL, v.Local)
			} else {
				e.addr(unix.IFLA_VXLAN_LOCAL6, v.Local)
			}
		}
		if args.underIndex > 0 {
			e.u32(unix.IFLA_VXLAN_LINK, uint32(args.underIndex))
		}
		port := v.Port
		if port == 0 {
			port = vxlanPort
		}
		e.be16(unix.IFLA_VXLAN_PORT, port)
		e.endNest(data)
	case "veth":
		data := e.nest(unix.IFLA_INFO_DATA)
		peer := e.nest(vethInfoPeer)
		e.ifinfo(false)
		e.str(unix.IFLA_IFNAME, l.Peer)
		if l.MTU > 0 {
			e.u32(unix.IFLA_MTU, uint32(l.MTU))
		}
		if args.peerNSFd >= 0 {
			e.u32(unix.IFLA_NET_NS_FD, uint32(args.peerNSFd))
		}
		e.endNest(peer)
		e.endNest(data)
	}
	e.endNest(info)
	e.end(off)
	return nil
}

// ifinfo appends a struct ifinfomsg that sets IFF_UP when up.
func (e *encoder) ifinfo(up bool) {
	h := e.zeros(unix.SizeofIfInfomsg)
	if up {
		ne.PutUint32(h[8:], unix.IFF_UP)
		ne.PutUint32(h[12:], unix.IFF_UP)
	}
}
