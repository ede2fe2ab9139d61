package kernel

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// conn is one NETLINK_ROUTE socket. It is not safe for concurrent use; the
// Handle serialises access.
type conn struct {
	fd  int
	seq uint32
	enc encoder
	// rbuf receives one datagram at a time. A dump datagram is at most
	// 32KiB (the kernel caps its allocation), a single reply fits too;
	// a longer one is reported, not cut silently (MSG_TRUNC).
	rbuf []byte
	// strict is true when NETLINK_GET_STRICT_CHK is on, so the kernel
	// filters dumps by table and protocol.
	strict bool
	// Batch limits for Execute derived from the socket buffers: a batch
	// must fit the send buffer in one sendmsg, and every message of a
	// batch might come back as an error that must fit the receive buffer.
	maxMsgs  int
	maxBytes int
	// maxSend is the longest sendmsg the socket takes (sk_sndbuf-32): the
	// limit of one nf_tables transaction.
	maxSend int
}

// Batch limits (variables so that a benchmark can try others).
var (
	batchMsgs  = 1000
	batchBytes = 256 << 10
)

const (
	// recvBufLen is twice the largest datagram the kernel sends: a
	// socket is opened per read, and a larger buffer was most of its cost.
	recvBufLen  = 64 << 10
	sndBufSize  = 4 << 20
	rcvBufSize  = 32 << 20
	recvTimeout = 60 * time.Second
	// errorTruesize is a generous estimate of the receive-buffer cost of
	// one capped NLMSG_ERROR with an extended-ack message.
	errorTruesize = 2048
)

// newConn opens an rtnetlink socket in the network namespace of the
// calling thread.
func newConn() (*conn, error) { return newConnProto(unix.NETLINK_ROUTE) }

// newConnProto opens a netlink socket of protocol proto (NETLINK_ROUTE,
// NETLINK_NETFILTER) in the network namespace of the calling thread.
func newConnProto(proto int) (*conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	c := &conn{fd: fd, seq: uint32(time.Now().UnixNano()), rbuf: make([]byte, recvBufLen)}
	if err := c.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (c *conn) setup() error {
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	// Extended acks give the kernel's own explanation of an error; capped
	// acks keep the request out of every error reply.
	unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	c.strict = unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1) == nil
	if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBufSize) != nil {
		unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndBufSize)
	}
	if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufSize) != nil {
		unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufSize)
	}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	snd, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return fmt.Errorf("netlink SO_SNDBUF: %w", err)
	}
	rcv, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return fmt.Errorf("netlink SO_RCVBUF: %w", err)
	}
	// The kernel reports twice the usable size and refuses a message
	// longer than sk_sndbuf-32.
	c.maxBytes = min(batchBytes, snd/2)
	c.maxSend = snd - 32
	c.maxMsgs = max(1, min(batchMsgs, rcv/errorTruesize))
	return nil
}

func (c *conn) close() error { return unix.Close(c.fd) }

func (c *conn) nextSeq() uint32 {
	c.seq++
	if c.seq == 0 {
		c.seq++
	}
	return c.seq
}

// reserveSeqs takes n consecutive sequence numbers, none of them 0, and
// returns the first.
func (c *conn) reserveSeqs(n int) uint32 {
	if c.seq+uint32(n) < c.seq {
		c.seq = 0 // wrap before the range, not inside it
	}
	first := c.seq + 1
	c.seq += uint32(n)
	return first
}

// send writes buf (one or more messages) in one sendmsg.
func (c *conn) send(buf []byte) error {
	for {
		err := unix.Sendto(c.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink send: %w", err)
		}
		return nil
	}
}

// recv reads one datagram and returns its messages' bytes.
func (c *conn) recv() ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(c.fd, c.rbuf, unix.MSG_TRUNC)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return nil, errors.New("netlink: no answer from the kernel within " + recvTimeout.String())
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		if n > len(c.rbuf) {
			return nil, fmt.Errorf("netlink: a reply of %d bytes is longer than the %d-byte receive buffer", n, len(c.rbuf))
		}
		return c.rbuf[:n], nil
	}
}

// message is one received netlink message.
type message struct {
	typ, flags uint16
	seq        uint32
	data       []byte // payload after the header
}

// forEach calls fn for each message in a datagram.
func forEach(b []byte, fn func(m message) (bool, error)) (bool, error) {
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return false, errors.New("netlink: malformed message from the kernel")
		}
		m := message{typ: ne.Uint16(b[4:]), flags: ne.Uint16(b[6:]), seq: ne.Uint32(b[8:]), data: b[nlmsgHdrLen:l]}
		done, err := fn(m)
		if done || err != nil {
			return done, err
		}
		if n := align4(l); n < len(b) {
			b = b[n:]
		} else {
			b = nil
		}
	}
	return false, nil
}

// Error is a failure the kernel reported: its errno and, when it gave
// one, its extended-ack message.
type Error struct {
	Errno unix.Errno
	Msg   string
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Errno.Error() + " (" + e.Msg + ")"
	}
	return e.Errno.Error()
}

func (e *Error) Unwrap() error { return e.Errno }

// parseError decodes an NLMSG_ERROR (or the payload of NLMSG_DONE after a
// failed dump); nil means an ack.
func parseError(m message) *Error {
	if len(m.data) < 4 {
		return &Error{Errno: unix.EBADMSG, Msg: "short error message"}
	}
	code := int32(ne.Uint32(m.data))
	if code == 0 {
		return nil
	}
	e := &Error{Errno: unix.Errno(-code)}
	if m.flags&unix.NLM_F_ACK_TLVS == 0 {
		return e
	}
	tlv := m.data[4:]
	if m.typ == unix.NLMSG_ERROR {
		// struct nlmsgerr: the error, then the request's header and,
		// unless capped, the request itself.
		if len(tlv) < nlmsgHdrLen {
			return e
		}
		skip := nlmsgHdrLen
		if m.flags&unix.NLM_F_CAPPED == 0 {
			skip = align4(int(ne.Uint32(tlv)))
		}
		if skip > len(tlv) {
			return e
		}
		tlv = tlv[skip:]
	}
	a := attrs{b: tlv}
	for a.next() {
		if a.typ == unix.NLMSGERR_ATTR_MSG {
			e.Msg = a.str()
		}
	}
	return e
}

// errDumpInterrupted: the kernel's data changed during a dump.
var errDumpInterrupted = errors.New("netlink: dump interrupted by a concurrent change")

// dump sends the request in c.enc (a single NLM_F_DUMP message with
// sequence number seq) and calls fn for every reply until NLMSG_DONE.
// fn must copy what it keeps: the payload is reused.
func (c *conn) dump(seq uint32, fn func(m message) error) error {
	if err := c.send(c.enc.b); err != nil {
		return err
	}
	interrupted := false
	for {
		b, err := c.recv()
		if err != nil {
			return err
		}
		ended := false // the kernel's last word on this dump was read
		done, err := forEach(b, func(m message) (bool, error) {
			if m.seq != seq {
				return false, nil // a late answer to an earlier request
			}
			if m.flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.typ {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				ended = true
				if len(m.data) < 4 {
					return true, nil
				}
				if e := parseError(m); e != nil {
					return true, e
				}
				return true, nil
			}
			return false, fn(m)
		})
		if err != nil {
			if !ended && err != errTableBig { // a table found too big: its socket is closed instead
				c.drain(seq)
			}
			return err
		}
		if done {
			if interrupted {
				return errDumpInterrupted
			}
			return nil
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

// dumpAll dumps the objects that request get asks for (a struct header
// of hdrLen bytes whose first byte is family, then what attrs appends, if
// not nil), keeping what decode makes of each answer of type answer. An
// interrupted dump is read again.
func dumpAll[T any](c *conn, get, answer uint16, hdrLen int, family uint8, attrs func(e *encoder), decode func(data []byte) (T, bool)) ([]T, error) {
	var out []T
	err := retryDump(func() error {
		out = out[:0]
		seq := c.nextSeq()
		c.enc.reset()
		off := c.enc.begin(get, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
		c.enc.zeros(hdrLen)[0] = family
		if attrs != nil {
			attrs(&c.enc)
		}
		c.enc.end(off)
		return c.dump(seq, func(m message) error {
			if m.typ == answer {
				if v, ok := decode(m.data); ok {
					out = append(out, v)
				}
			}
			return nil
		})
	})
	return out, err
}

// drain reads what remains of dump seq after fn failed, so that the next
// request starts on a clean socket.
func (c *conn) drain(seq uint32) {
	for {
		b, err := c.recv()
		if err != nil {
			return
		}
		done, _ := forEach(b, func(m message) (bool, error) {
			return m.seq == seq && (m.typ == unix.NLMSG_DONE || m.typ == unix.NLMSG_ERROR), nil
		})
		if done {
			return
		}
	}
}

// do sends the single request in c.enc (sequence seq, NLM_F_ACK set) and
// waits for its ack; fn, if not nil, sees any other reply.
func (c *conn) do(seq uint32, fn func(m message) error) error {
	if err := c.send(c.enc.b); err != nil {
		return err
	}
	for {
		b, err := c.recv()
		if err != nil {
			return err
		}
		var ferr error
		done, err := forEach(b, func(m message) (bool, error) {
			if m.seq != seq {
				return false, nil
			}
			if m.typ == unix.NLMSG_ERROR {
				if e := parseError(m); e != nil {
					return true, e
				}
				return true, nil
			}
			if fn != nil && ferr == nil {
				ferr = fn(m)
			}
			return false, nil
		})
		if done || err != nil {
			if err == nil {
				err = ferr
			}
			return err
		}
	}
}

// batch sends the messages in buf, with sequence numbers between first
// and last, in one sendmsg (message last carries NLM_F_ACK), and calls
// failed for every message the kernel refused. The kernel handles the
// messages of one sendmsg in order and keeps going after a failure.
func (c *conn) batch(buf []byte, first, last uint32, failed func(seq uint32, e *Error)) error {
	if err := c.send(buf); err != nil {
		return err
	}
	for {
		b, err := c.recv()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				return errors.New("netlink: receive buffer overflow, answers to a batch were lost")
			}
			return err
		}
		done, err := forEach(b, func(m message) (bool, error) {
			if m.typ != unix.NLMSG_ERROR || m.seq-first > last-first {
				return false, nil
			}
			if e := parseError(m); e != nil {
				failed(m.seq, e)
			}
			return m.seq == last, nil
		})
		if done || err != nil {
			return err
		}
	}
}
