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
// kernel in batches of up to about a thousand messages per sendmsg, only
// the last asking for an ack (a refused message is answered all the
// same); a route set op (state.Op.RouteSet) is one message per
// destination, encoded straight from its template, and may span many
// batches. A link op goes on its own, and so does a firewall op, as one
// nf_tables transaction (nft.go). applied[i] is true exactly for the ops
// that took effect. After the first batch with a failure no further batch
// is sent, and the error (an *OpError) names the first failed op in
// iproute2 words with the kernel's reason. Ops after the failed one in the
// same batch were already handed to the kernel and may have taken effect;
// applied tells. A route set takes effect whole or not at all: when one of
// its destinations fails (or the set was cut short by another op's
// failure), the destinations already done are taken back before Execute
// returns, and the error (a *RouteSetError inside the *OpError) names the
// first destination the kernel refused. Only if the socket itself fails
// (no answer, a lost receive buffer) is the outcome of that batch unknown:
// its ops stay false and the error says which ones.
func (h *Handle) Execute(ops []state.Op) (applied []bool, err error) {
	c, err := h.lock()
	if err != nil {
		return make([]bool, len(ops)), err
	}
	defer h.mu.Unlock()
	x := &executor{h: h, c: c, ops: ops, applied: make([]bool, len(ops)), progress: h.progress}
	x.set.op = -1
	for i := range ops {
		if ops[i].RouteSet != nil {
			x.total += len(ops[i].RouteSet.Dsts)
		} else {
			x.total++
		}
	}
	// Device indexes can change between calls (a VPN daemon recreates its
	// tun device); start from a fresh view.
	h.devs = nil
	err = x.run()
	if x.deletedSets || (x.madeNexthops && err != nil) {
		// Leftover objects are harmless (and reused or removed next
		// time); the ops' outcome stands either way.
		c.unusedNexthops(func() (*conn, error) { return connIn(h.ns) })
	}
	return x.applied, err
}

// SetProgress sets a function that Execute calls after each batch it
// sends (and after each link or firewall op) with how many of the
// current call's objects are done and how many there are in all; a route
// set counts one per destination. It runs with the handle locked, on
// Execute's goroutine, and must not use the handle. nil turns it off.
func (h *Handle) SetProgress(fn func(done, total int)) {
	h.mu.Lock()
	h.progress = fn
	h.mu.Unlock()
}

type executor struct {
	h       *Handle
	c       *conn
	ops     []state.Op
	applied []bool
	enc     encoder
	ifindex []int
	// msgOp and msgDst say, for each message of the current batch, the
	// op it belongs to and, for a route set, the destination's index.
	msgOp, msgDst []int32
	// set is the route set op being sent, possibly over several batches
	// (op -1 when none).
	set setCursor
	// progress, if set, hears of each batch; done of total objects.
	progress    func(done, total int)
	done, total int
	// nexthops are the namespace's nexthop objects once read (route sets
	// go through objects of tunroute's own, nexthop.go); noNexthops when
	// the kernel has none. madeNexthops and deletedSets (routes were
	// deleted or replaced) tell whether objects may be left unused at
	// the end.
	nexthops                  []nexthopInfo
	noNexthops                bool
	madeNexthops, deletedSets bool
}

func (x *executor) report(n int) {
	x.done += n
	if x.progress != nil {
		x.progress(x.done, x.total)
	}
}

func (x *executor) run() error {
	for i := 0; i < len(x.ops); {
		if x.ops[i].Link != nil {
			if err := x.link(i); err != nil {
				return &OpError{Index: i, Op: x.ops[i], Err: err}
			}
			x.applied[i] = true
			x.report(1)
			i++
			continue
		}
		if x.ops[i].Firewall != nil {
			// The rtnetlink batch before it is done (batch returns only
			// after the kernel's answers), so the order holds.
			if err := x.firewall(i); err != nil {
				return &OpError{Index: i, Op: x.ops[i], Err: err}
			}
			x.report(1)
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

// batched reports whether op goes into rtnetlink batches.
func batched(op *state.Op) bool { return op.Link == nil && op.Firewall == nil }

// batch sends messages from op start on (or from where the route set
// being sent stopped), up to the next link or firewall op or the batch
// limits, and returns the op the next batch starts at.
func (x *executor) batch(start int) (int, error) {
	c := x.c
	x.enc.reset()
	x.msgOp, x.msgDst = x.msgOp[:0], x.msgDst[:0]
	first := c.reserveSeqs(c.maxMsgs)
	var local *OpError
	i := start
	lastOff := -1
	for i < len(x.ops) && batched(&x.ops[i]) && len(x.msgOp) < c.maxMsgs {
		op := &x.ops[i]
		if op.RouteSet != nil {
			if x.set.op != i {
				if err := x.startSet(i); err != nil {
					local = &OpError{Index: i, Op: *op, Err: err}
					break
				}
			}
			dsts := op.RouteSet.Dsts
			for x.set.next < len(dsts) && len(x.msgOp) < c.maxMsgs {
				mark := len(x.enc.b)
				d := x.set.dst(x.set.next)
				x.set.t.encode(&x.enc, dsts[d], first+uint32(len(x.msgOp)))
				if len(x.enc.b) > c.maxBytes && len(x.msgOp) > 0 {
					x.enc.b = x.enc.b[:mark] // goes into the next batch
					break
				}
				lastOff = mark
				x.msgOp = append(x.msgOp, int32(i))
				x.msgDst = append(x.msgDst, int32(d))
				x.set.next++
			}
			if x.set.next < len(dsts) {
				break // the set goes on in the next batch
			}
			i++
			continue
		}
		mark := len(x.enc.b)
		if err := x.encode(op, first+uint32(len(x.msgOp))); err != nil {
			x.enc.b = x.enc.b[:mark]
			local = &OpError{Index: i, Op: *op, Err: err}
			break
		}
		if len(x.enc.b) > c.maxBytes && len(x.msgOp) > 0 {
			x.enc.b = x.enc.b[:mark] // goes into the next batch
			break
		}
		lastOff = mark
		x.msgOp = append(x.msgOp, int32(i))
		x.msgDst = append(x.msgDst, -1)
		i++
	}
	n := len(x.msgOp)
	if n == 0 {
		// Nothing to send: empty route sets, or a local failure first.
		for k := start; k < i; k++ {
			x.applied[k] = true
		}
		x.set.op = -1
		if local != nil {
			return i, local
		}
		return i, nil
	}
	fl := ne.Uint16(x.enc.b[lastOff+6:])
	ne.PutUint16(x.enc.b[lastOff+6:], fl|unix.NLM_F_ACK)
	var fails []failure
	err := c.batch(x.enc.b, first, first+uint32(n-1), func(seq uint32, e *Error) {
		fails = append(fails, failure{k: int(seq - first), err: e})
	})
	if err != nil {
		lo, hi := int(x.msgOp[0]), int(x.msgOp[n-1])
		err = fmt.Errorf("ops %d-%d (%s ...): %w", lo, hi, x.ops[lo], err)
		if x.set.op >= 0 {
			// Which destinations of the set took effect is unknown:
			// take back all that were sent, whether or not there.
			if uerr := x.undoSet(x.set.op, x.set.next, nil, true); uerr != nil {
				err = fmt.Errorf("%w; op %d (%s) may have taken effect in part: undoing it: %v", err, x.set.op, x.ops[x.set.op], uerr)
			}
			x.set.op = -1
		}
		return i, err
	}
	x.report(n)
	return x.settle(start, i, fails, local)
}

// failure is a message of a batch the kernel refused: its index in the
// batch.
type failure struct {
	k   int
	err *Error
}

// settle records the outcome of a sent batch that holds the messages of
// ops start to next-1, and the first ones of op next when that is a route
// set that goes on in the next batch: ops without a failure took effect,
// except that set. After any failure, the route sets that failed, or the
// one cut short, are taken back.
func (x *executor) settle(start, next int, fails []failure, local *OpError) (int, error) {
	hi := int(x.msgOp[len(x.msgOp)-1])
	type opFailure struct {
		first *failure
		count int
		dsts  map[int]bool // a route set's refused destinations
	}
	failed := map[int]*opFailure{}
	for f := range fails {
		fa := &fails[f]
		if fa.k < 0 || fa.k >= len(x.msgOp) {
			continue
		}
		op := int(x.msgOp[fa.k])
		of := failed[op]
		if of == nil {
			of = &opFailure{first: fa}
			failed[op] = of
		}
		if fa.k < of.first.k {
			of.first = fa
		}
		of.count++
		if d := x.msgDst[fa.k]; d >= 0 {
			if of.dsts == nil {
				of.dsts = map[int]bool{}
			}
			of.dsts[int(d)] = true
		}
	}
	ongoing := -1 // a route set that goes on in the next batch
	if hi == next {
		ongoing = hi
	}
	for k := start; k < next; k++ {
		if failed[k] == nil {
			x.applied[k] = true
		}
	}
	if len(failed) == 0 {
		if ongoing < 0 {
			x.set.op = -1
		}
		if local != nil {
			return next, local
		}
		return next, nil
	}
	var errs []error
	var oe *OpError
	for k := start; k <= hi; k++ {
		of := failed[k]
		set := x.ops[k].RouteSet
		if set != nil && (of != nil || k == ongoing) {
			end := len(set.Dsts)
			if k == ongoing {
				end = x.set.next
			}
			var skip map[int]bool
			if of != nil {
				skip = of.dsts
			}
			uerr := x.undoSet(k, end, skip, false)
			if of == nil {
				if uerr != nil {
					errs = append(errs, fmt.Errorf("op %d (%s) was cut short and undoing it failed, the table holds part of it: %w", k, x.ops[k], uerr))
				}
				continue
			}
			if oe == nil {
				oe = &OpError{Index: k, Op: x.ops[k], Later: len(failed) - 1,
					Err: &RouteSetError{Dst: set.Dsts[x.msgDst[of.first.k]], Err: of.first.err, Failed: of.count, Undo: uerr}}
			} else if uerr != nil {
				errs = append(errs, fmt.Errorf("op %d (%s) failed too and undoing it failed, the table holds part of it: %w", k, x.ops[k], uerr))
			}
			continue
		}
		if of != nil && oe == nil {
			oe = &OpError{Index: k, Op: x.ops[k], Err: of.first.err, Later: len(failed) - 1}
		}
	}
	x.set.op = -1
	if len(errs) > 0 {
		return next, errors.Join(append([]error{oe}, errs...)...)
	}
	return next, oe
}

// encode appends the message for one op (not a route set) to x.enc.
func (x *executor) encode(op *state.Op, seq uint32) error {
	switch {
	case op.Route != nil:
		r := op.Route
		if err := x.resolve(op.Action, r); err != nil {
			return err
		}
		if op.Action != state.Add {
			x.deletedSets = true // it may have been a set's, using a nexthop object
		}
		return x.enc.encodeRoute(op.Action, r, x.ifindex, seq)
	case op.Addr != nil:
		idx, err := x.dev(op.Addr.Dev, op.Addr.Index)
		if err != nil {
			return err
		}
		if idx == 0 {
			return errors.New("address without a device")
		}
		return x.enc.encodeAddr(op.Action, op.Addr, idx, seq)
	case op.Rule != nil:
		return x.enc.encodeRule(op.Action, op.Rule, seq)
	}
	return errors.New("the op names no object")
}

// resolve fills x.ifindex with the devices of r's nexthops. A delete
// names no device: it may be gone already.
func (x *executor) resolve(act state.Action, r *state.Route) error {
	x.ifindex = x.ifindex[:0]
	if act == state.Delete {
		return nil
	}
	for j := range r.Nexthops {
		idx, err := x.dev(r.Nexthops[j].Dev, r.Nexthops[j].Index)
		if err != nil {
			return err
		}
		x.ifindex = append(x.ifindex, idx)
	}
	return nil
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
		case l.Userspace:
			return fmt.Errorf("%s is made by a userspace WireGuard (start wireguard-go %s first); tunroute only configures it", l.Name, l.Name)
		case l.Kind == "vxlan":
			if err := x.newVXLAN(l); err != nil {
				return err
			}
		case state.IsTunnelKind(l.Kind):
			if err := x.newTunnel(l); err != nil {
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
	case state.Replace:
		return x.reconfigure(l, op.PrevLink)
	default:
		return fmt.Errorf("%s is not supported for links", op.Action)
	}
	x.applied[i] = true // the link exists now, whatever follows
	if err := x.setDevice(l); err != nil {
		return fmt.Errorf("created, but %w", err)
	}
	if !l.Up && l.Alias == "" {
		return nil
	}
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
	// request is sent in, or a tunnel's underlying device; 0 for none.
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
	case state.KindXFRM, state.KindVTI, state.KindVTI6, state.KindGRE, state.KindIP6GRE:
		if err := e.encodeTunnelData(l, args.underIndex); err != nil {
			return err
		}
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

// setAdminState puts a link up or down.
func (c *conn) setAdminState(name string, up bool) error {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_NEWLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	h := c.enc.zeros(unix.SizeofIfInfomsg)
	if up {
		ne.PutUint32(h[8:], unix.IFF_UP)
	}
	ne.PutUint32(h[12:], unix.IFF_UP) // change mask: IFF_UP either way
	c.enc.str(unix.IFLA_IFNAME, name)
	c.enc.end(off)
	return c.do(seq, nil)
}

// ifinfo appends a struct ifinfomsg that sets IFF_UP when up.
func (e *encoder) ifinfo(up bool) {
	h := e.zeros(unix.SizeofIfInfomsg)
	if up {
		ne.PutUint32(h[8:], unix.IFF_UP)
		ne.PutUint32(h[12:], unix.IFF_UP)
	}
}
