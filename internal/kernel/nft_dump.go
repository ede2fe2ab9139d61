package kernel

import (
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables/expr"
	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// The dumps Observe reads tunroute's table with, decoded in place: only
// what belongs to the table is decoded.

// nftTable reads the table's flags; ok is false if it does not exist.
func (c *conn) nftTable() (flags uint32, ok bool, err error) {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.nfBegin(nftMsgType(unix.NFT_MSG_GETTABLE), unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, unix.NFPROTO_INET, 0)
	c.enc.str(unix.NFTA_TABLE_NAME, state.FirewallTable)
	c.enc.end(off)
	err = c.do(seq, func(m message) error {
		if m.typ != nftMsgType(unix.NFT_MSG_NEWTABLE) || len(m.data) < 4 {
			return nil
		}
		ok = true
		a := attrs{b: m.data[4:]}
		for a.next() {
			if a.typ == unix.NFTA_TABLE_FLAGS {
				flags = a.be32()
			}
		}
		return nil
	})
	if errors.Is(err, unix.ENOENT) {
		return 0, false, nil
	}
	return flags, ok, err
}

// tableIs reports whether the attributes a name tunroute's table (by
// NFTA_*_TABLE, typ), without decoding anything else.
func tableIs(a attrs, typ uint16) bool {
	for a.next() {
		if a.typ == typ {
			return a.str() == state.FirewallTable
		}
	}
	return false
}

func (c *conn) nftChains() ([]state.Chain, error) {
	var out []state.Chain
	err := c.nftDump(unix.NFT_MSG_GETCHAIN, nil, func(a attrs) error {
		if !tableIs(a, unix.NFTA_CHAIN_TABLE) {
			return nil
		}
		var ch state.Chain
		for a.next() {
			switch a.typ {
			case unix.NFTA_CHAIN_NAME:
				ch.Name = a.str()
			case unix.NFTA_CHAIN_TYPE:
				ch.Type = a.str()
			case unix.NFTA_CHAIN_POLICY:
				ch.Policy = nameOf(nfPolicies, a.be32(), "policy")
			case unix.NFTA_CHAIN_HOOK:
				h := attrs{b: a.val}
				for h.next() {
					switch h.typ {
					case unix.NFTA_HOOK_HOOKNUM:
						ch.Hook = nameOf(nfHooks, h.be32(), "hook")
					case unix.NFTA_HOOK_PRIORITY:
						ch.Priority = int(int32(h.be32()))
					}
				}
			}
		}
		out = append(out, ch)
		return nil
	})
	return out, err
}

func nameOf(m map[string]uint32, v uint32, what string) string {
	for k, x := range m {
		if x == v {
			return k
		}
	}
	return fmt.Sprintf("%s %d", what, v)
}

// kernelRule is one rule of tunroute's table as dumped.
type kernelRule struct {
	chain  string
	exprs  []any // google/nftables expr types; *expr.Byteorder decoded here
	bad    error // an expression tunroute does not write
	udata  []byte
	handle uint64
}

func (c *conn) nftRules() ([]*kernelRule, error) {
	var out []*kernelRule
	err := c.nftDump(unix.NFT_MSG_GETRULE, func(e *encoder) {
		e.str(unix.NFTA_RULE_TABLE, state.FirewallTable)
	}, func(a attrs) error {
		if !tableIs(a, unix.NFTA_RULE_TABLE) {
			return nil
		}
		kr := &kernelRule{}
		for a.next() {
			switch a.typ {
			case unix.NFTA_RULE_CHAIN:
				kr.chain = a.str()
			case unix.NFTA_RULE_HANDLE:
				kr.handle = a.be64()
			case unix.NFTA_RULE_USERDATA:
				kr.udata = slices.Clone(a.val)
			case unix.NFTA_RULE_EXPRESSIONS:
				kr.exprs, kr.bad = parseExprs(a.val)
			}
		}
		out = append(out, kr)
		return nil
	})
	return out, err
}

// parseExprs decodes a rule's expression list (NFTA_RULE_EXPRESSIONS) into
// google/nftables expression values; the decoded values own their bytes.
func parseExprs(b []byte) ([]any, error) {
	var out []any
	l := attrs{b: b}
	for l.next() {
		if l.typ != unix.NFTA_LIST_ELEM {
			continue
		}
		var name string
		var data []byte
		in := attrs{b: l.val}
		for in.next() {
			switch in.typ {
			case unix.NFTA_EXPR_NAME:
				name = in.str()
			case unix.NFTA_EXPR_DATA:
				data = slices.Clone(in.val)
			}
		}
		x, err := decodeExpr(name, data)
		if err != nil {
			return out, err
		}
		out = append(out, x)
	}
	return out, nil
}

func decodeExpr(name string, data []byte) (any, error) {
	var e expr.Any
	switch name {
	case "meta":
		e = &expr.Meta{}
	case "cmp":
		e = &expr.Cmp{}
	case "lookup":
		e = &expr.Lookup{}
	case "payload":
		e = &expr.Payload{}
	case "bitwise":
		e = &expr.Bitwise{}
	case "range":
		e = &expr.Range{}
	case "socket":
		e = &expr.Socket{}
	case "ct":
		e = &expr.Ct{}
	case "counter":
		e = &expr.Counter{}
	case "reject":
		e = &expr.Reject{}
	case "masq":
		e = &expr.Masq{}
	case "nat":
		e = &expr.NAT{}
	case "immediate":
		e = &expr.Immediate{}
	case "fib":
		e = &expr.Fib{}
	case "exthdr":
		e = &expr.Exthdr{}
	case "byteorder":
		// google/nftables v0.3.0 does not decode it.
		bo := &expr.Byteorder{}
		a := attrs{b: data}
		for a.next() {
			switch a.typ {
			case unix.NFTA_BYTEORDER_SREG:
				bo.SourceRegister = a.be32()
			case unix.NFTA_BYTEORDER_DREG:
				bo.DestRegister = a.be32()
			case unix.NFTA_BYTEORDER_OP:
				bo.Op = expr.ByteorderOp(a.be32())
			case unix.NFTA_BYTEORDER_LEN:
				bo.Len = a.be32()
			case unix.NFTA_BYTEORDER_SIZE:
				bo.Size = a.be32()
			}
		}
		return bo, nil
	default:
		return nil, fmt.Errorf("expression %q", name)
	}
	if err := expr.Unmarshal(unix.NFPROTO_INET, data, e); err != nil {
		return nil, fmt.Errorf("expression %s: %w", name, err)
	}
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		v := &expr.Verdict{}
		if err := expr.Unmarshal(unix.NFPROTO_INET, data, v); err != nil {
			return nil, fmt.Errorf("verdict: %w", err)
		}
		return v, nil
	}
	return e, nil
}

// nftSetElems dumps the elements of a set of tunroute's table.
func (c *conn) nftSetElems(set string) ([]setElem, error) {
	var out []setElem
	err := c.nftDump(unix.NFT_MSG_GETSETELEM, func(e *encoder) {
		e.str(unix.NFTA_SET_ELEM_LIST_TABLE, state.FirewallTable)
		e.str(unix.NFTA_SET_ELEM_LIST_SET, set)
	}, func(a attrs) error {
		if !tableIs(a, unix.NFTA_SET_ELEM_LIST_TABLE) {
			return nil
		}
		for a.next() {
			if a.typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			l := attrs{b: a.val}
			for l.next() {
				var el setElem
				in := attrs{b: l.val}
				for in.next() {
					switch in.typ {
					case unix.NFTA_SET_ELEM_KEY:
						k := attrs{b: in.val}
						for k.next() {
							if k.typ == unix.NFTA_DATA_VALUE {
								el.key = slices.Clone(k.val)
							}
						}
					case unix.NFTA_SET_ELEM_FLAGS:
						el.end = in.be32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
					}
				}
				out = append(out, el)
			}
		}
		return nil
	})
	return out, err
}
