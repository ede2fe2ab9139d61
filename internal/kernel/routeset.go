package kernel

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// Route sets (state.Op.RouteSet): many routes that differ only in their
// destination. Execute encodes the template's message once and patches
// each destination into a copy of it, so a million routes cost a million
// small copies, not a million state.Routes.

// RouteSetError is why a route set op failed: the first destination the
// kernel refused, with its reason. The set's other destinations were taken
// back, unless Undo says otherwise.
type RouteSetError struct {
	Dst netip.Prefix
	// Err is the kernel's *Error for Dst.
	Err error
	// Failed counts the destinations the kernel refused, Dst included.
	Failed int
	// Undo is why taking back the destinations already done failed; the
	// table then holds part of the set.
	Undo error
}

func (e *RouteSetError) Error() string {
	s := fmt.Sprintf("route to %s: %v", e.Dst, e.Err)
	if e.Failed > 1 {
		s += fmt.Sprintf(" (and %d more of the set)", e.Failed-1)
	}
	if e.Undo != nil {
		s += "; taking back the rest of the set failed, the table holds part of it: " + e.Undo.Error()
	}
	return s
}

func (e *RouteSetError) Unwrap() error { return e.Err }

// setCursor is the route set op being sent: op's destinations before next
// (in the order of order, when not nil) are in batches already sent (or
// in the current one).
type setCursor struct {
	op    int
	next  int
	order []int32
	t     setTemplate
}

// dst returns the index of the k-th destination to send.
func (c *setCursor) dst(k int) int {
	if c.order != nil {
		return int(c.order[k])
	}
	return k
}

// orderMin is the size from which a set's destinations are sent in a
// shuffled order. The kernel's routing trie resizes its nodes as they
// fill and empty; prefixes that come in sorted order (a list sorted by
// address, or the kernel's own dump order when deleting) make it do so
// over and over: a million routes of an Internet-like mix went in in 3.1 s
// sorted against 1.6-2.0 s shuffled, and came out in 4.6 s in dump order
// against 1.4-1.7 s shuffled.
const orderMin = 4096

// setOrder returns the order to send n destinations in, nil for as
// given: a permutation that depends on n only, so that undoSet knows what
// was sent.
func setOrder(n int) []int32 {
	if n < orderMin {
		return nil
	}
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	r := rand.New(rand.NewPCG(uint64(n), 0x74756e726f757465))
	for i := n - 1; i > 0; i-- {
		j := r.IntN(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// setTemplate encodes one route set's messages.
type setTemplate struct {
	// msg is the message for a destination of the set's family with
	// full length; dstOff is where RTA_DST's payload starts in it.
	msg    []byte
	dstOff int
	// route and ifindex encode what does not fit msg (a /0) the slow way.
	act     state.Action
	route   state.Route
	ifindex []int
}

// prepare builds the template for act on set: every destination must be
// a valid prefix of one family, and the template's devices must exist
// (unless act is a delete).
func (x *executor) prepare(t *setTemplate, act state.Action, set *state.RouteSet) error {
	if len(set.Dsts) == 0 {
		return nil
	}
	v4 := set.Dsts[0].Addr().Is4()
	for _, d := range set.Dsts {
		if !d.IsValid() || d.Addr().Is4() != v4 || d.Addr().Zone() != "" {
			return fmt.Errorf("destination %s: not a prefix of the set's family (%s)", d, set.Dsts[0])
		}
	}
	t.act = act
	t.route = set.Template
	if err := x.resolve(act, &t.route); err != nil {
		return err
	}
	t.ifindex = append(t.ifindex[:0], x.ifindex...)
	if act == state.Add && len(t.ifindex) == 1 {
		id, err := x.nexthopFor(&t.route, !v4, t.ifindex[0])
		if err != nil {
			return err
		}
		if id != 0 {
			t.route.NHID = id
			t.route.Nexthops = nil
			t.route.Flags &^= state.NexthopOnlink
			t.ifindex = t.ifindex[:0]
		}
	}
	full := netip.PrefixFrom(netip.IPv6Unspecified(), 128)
	if v4 {
		full = netip.PrefixFrom(netip.IPv4Unspecified(), 32)
	}
	t.route.Dst = full
	var e encoder
	if err := e.encodeRoute(act, &t.route, t.ifindex, 0); err != nil {
		return err
	}
	t.msg = e.b
	t.dstOff = e.dstAt
	if t.dstOff <= 0 || t.dstOff+full.Addr().BitLen()/8 > len(t.msg) {
		return errors.New("internal error: no destination in the route template")
	}
	return nil
}

// encode appends the message for dst with sequence number seq.
func (t *setTemplate) encode(e *encoder, dst netip.Prefix, seq uint32) {
	if dst.Bits() == 0 {
		t.route.Dst = dst
		e.encodeRoute(t.act, &t.route, t.ifindex, seq) // cannot fail: prepare encoded the same
		return
	}
	off := len(e.b)
	e.b = append(e.b, t.msg...)
	m := e.b[off:]
	ne.PutUint32(m[8:], seq)
	m[nlmsgHdrLen+1] = uint8(dst.Bits())
	if dst.Addr().Is4() {
		a := dst.Addr().As4()
		copy(m[t.dstOff:], a[:])
	} else {
		a := dst.Addr().As16()
		copy(m[t.dstOff:], a[:])
	}
}

// startSet makes op i, a route set, the one being sent.
func (x *executor) startSet(i int) error {
	x.set.op, x.set.next, x.set.order = -1, 0, nil
	op := &x.ops[i]
	if op.Action != state.Add && op.Action != state.Delete {
		return fmt.Errorf("%s is not supported for route sets", op.Action)
	}
	if err := x.prepare(&x.set.t, op.Action, op.RouteSet); err != nil {
		return err
	}
	if op.Action == state.Delete {
		x.deletedSets = true
	}
	x.set.op = i
	x.set.order = setOrder(len(op.RouteSet.Dsts))
	return nil
}

// undoSet takes back the first end destinations sent of route set op i
// (in setOrder), except those in skip (refused by the kernel, by index): it deletes what an add
// put in, or puts back what a delete took out. With unknown, the outcome
// of the destinations is not known, and one that is not there (or is
// there already) is not an error.
func (x *executor) undoSet(i, end int, skip map[int]bool, unknown bool) error {
	op := &x.ops[i]
	inv := state.Delete
	if op.Action == state.Delete {
		inv = state.Add
	} else {
		x.deletedSets = true
	}
	var t setTemplate
	if err := x.prepare(&t, inv, op.RouteSet); err != nil {
		return err
	}
	dsts := op.RouteSet.Dsts
	sent := setCursor{order: setOrder(len(dsts))}
	c := x.c
	var first error
	failed := 0
	for k := 0; k < end; {
		x.enc.reset()
		seq0 := c.reserveSeqs(c.maxMsgs)
		var idx []int
		lastOff := -1
		for ; k < end && len(idx) < c.maxMsgs && len(x.enc.b) < c.maxBytes; k++ {
			d := sent.dst(k)
			if skip[d] {
				continue
			}
			lastOff = len(x.enc.b)
			t.encode(&x.enc, dsts[d], seq0+uint32(len(idx)))
			idx = append(idx, d)
		}
		if len(idx) == 0 {
			continue
		}
		fl := ne.Uint16(x.enc.b[lastOff+6:])
		ne.PutUint16(x.enc.b[lastOff+6:], fl|unix.NLM_F_ACK)
		err := c.batch(x.enc.b, seq0, seq0+uint32(len(idx)-1), func(seq uint32, e *Error) {
			if unknown && (e.Errno == unix.ESRCH || e.Errno == unix.ENOENT || e.Errno == unix.EEXIST) {
				return
			}
			failed++
			if first == nil {
				first = fmt.Errorf("%s route to %s: %w", inv, dsts[idx[seq-seq0]], e)
			}
		})
		if err != nil {
			return err
		}
	}
	if failed > 1 {
		return fmt.Errorf("%w (and %d more)", first, failed-1)
	}
	return first
}
