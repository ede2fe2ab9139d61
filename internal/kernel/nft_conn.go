package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// This file is the nfnetlink side of the wire: tunroute's nftables table is
// read and written over a NETLINK_NETFILTER socket of the package's own
// conn type. google/nftables' expr package encodes and decodes the rule
// expressions; its Conn is not used, because its Flush pairs answers with
// messages by position (a lost or late answer shifts every later one onto
// the wrong message, also on the next call) and asks for an echo of every
// rule, which overflows the receive buffer for a few hundred rules.

var be = binary.BigEndian

// nftMsgType is the netlink message type of an nf_tables message.
func nftMsgType(msg int) uint16 { return uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | msg) }

// nfBegin starts an nfnetlink message: netlink header, then struct
// nfgenmsg (family, version, resource id in network byte order).
func (e *encoder) nfBegin(typ, flags uint16, seq uint32, family uint8, resID uint16) int {
	off := e.begin(typ, flags, seq)
	h := e.zeros(4)
	h[0] = family
	h[1] = unix.NFNETLINK_V0
	be.PutUint16(h[2:], resID)
	return off
}

// be32 appends a 32-bit attribute in network byte order (nf_tables'
// integers are big endian).
func (e *encoder) be32(typ uint16, v uint32) {
	e.attrHdr(typ, 4)
	e.b = be.AppendUint32(e.b, v)
}

func (a *attrs) be32() uint32 { return be.Uint32(a.fixed(4)) }
func (a *attrs) be64() uint64 { return be.Uint64(a.fixed(8)) }

// nfConn returns the handle's NETLINK_NETFILTER socket, opening it inside
// the namespace on first use. The caller holds h.mu.
func (h *Handle) nfConn() (*conn, error) {
	if h.nf != nil {
		return h.nf, nil
	}
	var c *conn
	err := inNetns(h.ns, func() error {
		var err error
		c, err = newConnProto(unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	h.nf = c
	return c, nil
}

// dropNF closes the netfilter socket after a failure that may have left
// unread answers on it; the next use opens a fresh one.
func (h *Handle) dropNF() {
	if h.nf != nil {
		h.nf.close()
		h.nf = nil
	}
}

// nftTxn is one nf_tables transaction being encoded: the messages between
// a batch begin and a batch end, each with NLM_F_ACK, and what each one
// does in words for error messages.
type nftTxn struct {
	c     *conn
	e     encoder
	seqs  []uint32
	what  []string
	setID uint32
}

func newTxn(c *conn) *nftTxn { return newTxnAt(c, 0) }

// nfnlBatchGenID is NFNL_BATCH_GENID, the batch begin's attribute that
// makes the kernel refuse the whole batch (ERESTART) if the ruleset's
// generation is no longer gen.
const nfnlBatchGenID = 1

// newTxnAt starts a transaction the kernel only takes at the ruleset's
// generation gen (0: at any).
func newTxnAt(c *conn, gen uint32) *nftTxn {
	t := &nftTxn{c: c}
	off := t.e.nfBegin(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, c.nextSeq(), unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	if gen != 0 {
		t.e.be32(nfnlBatchGenID, gen)
	}
	t.e.end(off)
	return t
}

// msg starts an nf_tables message of the inet family; end it with t.e.end.
func (t *nftTxn) msg(typ int, flags uint16, what string) int {
	seq := t.c.nextSeq()
	t.seqs = append(t.seqs, seq)
	t.what = append(t.what, what)
	return t.e.nfBegin(nftMsgType(typ), unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags, seq, unix.NFPROTO_INET, 0)
}

// nftFailure is a message of a transaction that the kernel refused.
type nftFailure struct {
	What string
	Err  *Error
}

// commit sends the transaction in one sendmsg and waits for the kernel's
// answer to every message. The kernel applies all of it or, if any
// message fails, none of it; failed lists the refused messages in order.
// A non-nil error means the answer was not read (socket failure): the
// outcome is then unknown.
func (t *nftTxn) commit() (failed []nftFailure, err error) {
	if len(t.seqs) == 0 {
		return nil, nil
	}
	beginSeq := ne.Uint32(t.e.b[8:])
	off := t.e.nfBegin(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, t.c.nextSeq(), unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	t.e.end(off)
	if len(t.e.b) > t.c.maxSend {
		return []nftFailure{{What: "the transaction", Err: &Error{Errno: unix.EMSGSIZE,
			Msg: fmt.Sprintf("%d bytes, the netlink socket takes at most %d", len(t.e.b), t.c.maxSend)}}}, nil
	}
	if err := t.c.send(t.e.b); err != nil {
		return nil, err
	}
	first, last := t.seqs[0], t.seqs[len(t.seqs)-1]
	for {
		b, err := t.c.recv()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				return failed, errors.New("netlink: receive buffer overflow, the kernel's answers were lost")
			}
			return failed, err
		}
		done, err := forEach(b, func(m message) (bool, error) {
			if m.typ != unix.NLMSG_ERROR {
				return false, nil
			}
			if m.seq == beginSeq {
				// The kernel could not even queue the errors (ENOMEM)
				// and answered for the whole batch.
				if e := parseError(m); e != nil {
					failed = append(failed, nftFailure{What: "the transaction", Err: e})
				}
				return true, nil
			}
			if m.seq-first > last-first {
				return false, nil // a late answer to an earlier request
			}
			if e := parseError(m); e != nil {
				k := int(m.seq - first)
				failed = append(failed, nftFailure{What: t.what[k], Err: e})
			}
			return m.seq == last, nil
		})
		if done || err != nil {
			return failed, err
		}
	}
}

// nftGen reads the ruleset's generation, which every committed
// transaction changes.
func (c *conn) nftGen() (uint32, error) {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.nfBegin(nftMsgType(unix.NFT_MSG_GETGEN), unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, unix.AF_UNSPEC, 0)
	c.enc.end(off)
	var gen uint32
	err := c.do(seq, func(m message) error {
		if m.typ != nftMsgType(unix.NFT_MSG_NEWGEN) || len(m.data) < 4 {
			return nil
		}
		a := attrs{b: m.data[4:]}
		for a.next() {
			if a.typ == unix.NFTA_GEN_ID {
				gen = a.be32()
			}
		}
		return nil
	})
	return gen, err
}

// nftDump runs a dump of message type typ (inet family) whose request
// carries the attributes that attrsFn appends, calling fn with the
// attributes of every answer (after struct nfgenmsg).
func (c *conn) nftDump(typ int, attrsFn func(e *encoder), fn func(a attrs) error) error {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.nfBegin(nftMsgType(typ), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, unix.NFPROTO_INET, 0)
	if attrsFn != nil {
		attrsFn(&c.enc)
	}
	c.enc.end(off)
	return c.dump(seq, func(m message) error {
		if len(m.data) < 4 {
			return nil
		}
		return fn(attrs{b: m.data[4:]})
	})
}
