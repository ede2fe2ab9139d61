package fib

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Query is one `ip route get` request.
type Query struct {
	To         netip.Addr
	From       netip.Addr // invalid: not given
	IIF        string     // input path when set
	OIF        string
	Mark       uint32
	IPProto    uint8
	HasIPProto bool
	SPort      uint16
	DPort      uint16
	UID        uint32
	HasUID     bool
	TOS        uint8
	FibMatch   bool
}

// QueryError is a query the parser refuses; Word names the bad word.
type QueryError struct {
	Word  string
	Value string
	Msg   string
}

func (e *QueryError) Error() string {
	if e.Value == "" && e.Word == "" {
		return e.Msg
	}
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Word, e.Msg)
	}
	return fmt.Sprintf("%s %q: %s", e.Word, e.Value, e.Msg)
}

// ParseQuery parses the words of `ip route get`: [to] ADDR [from ADDR]
// [iif DEV] [oif DEV] [mark N] [ipproto P] [sport N] [dport N] [uid N]
// [tos N] [fibmatch]. Numbers are decimal, 0x-hex or 0-octal like
// iproute2's; tos is hexadecimal as in iproute2 ("tos 10" is 0x10). "dev"
// and "dsfield" are accepted as iproute2's synonyms of oif and tos.
func ParseQuery(args []string) (Query, error) { return parseWords(args) }

func parseWords(args []string) (Query, error) {
	var q Query
	var p queryParser
	for i := 0; i < len(args); i++ {
		w := args[i]
		val := func() (string, error) {
			if i+1 >= len(args) {
				return "", &QueryError{Word: w, Msg: "needs a value"}
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch w {
		case "fibmatch":
			q.FibMatch = true
			continue
		case "to", "from", "iif", "oif", "dev", "mark", "ipproto", "sport", "dport", "uid", "tos", "dsfield":
			if v, err = val(); err != nil {
				return Query{}, err
			}
		default:
			v, w = w, "to"
		}
		if err := p.word(&q, w, v); err != nil {
			return Query{}, err
		}
	}
	if err := p.finish(&q); err != nil {
		return Query{}, err
	}
	return q, nil
}

type queryParser struct {
	seen uint32
}

func wordBit(w string) uint32 {
	switch w {
	case "to":
		return 1
	case "from":
		return 2
	case "iif":
		return 4
	case "oif", "dev":
		return 8
	case "mark":
		return 16
	case "ipproto":
		return 32
	case "sport":
		return 64
	case "dport":
		return 128
	case "uid":
		return 256
	case "tos", "dsfield":
		return 512
	}
	return 0
}

func (p *queryParser) word(q *Query, w, v string) error {
	bit := wordBit(w)
	if p.seen&bit != 0 {
		return &QueryError{Word: w, Value: v, Msg: "given twice"}
	}
	p.seen |= bit
	var err error
	switch w {
	case "to":
		q.To, err = parseQueryAddr(w, v)
	case "from":
		q.From, err = parseQueryAddr(w, v)
	case "iif":
		q.IIF, err = parseDev(w, v)
	case "oif", "dev":
		q.OIF, err = parseDev(w, v)
	case "mark":
		q.Mark, err = parseNum32(w, v)
	case "uid":
		q.UID, err = parseNum32(w, v)
		q.HasUID = true
	case "sport", "dport":
		var n uint32
		n, err = parseNum32(w, v)
		if err == nil && n > 65535 {
			err = &QueryError{Word: w, Value: v, Msg: "is not a port number (0-65535)"}
		}
		if w == "sport" {
			q.SPort = uint16(n)
		} else {
			q.DPort = uint16(n)
		}
	case "ipproto":
		q.IPProto, err = parseProto(v)
		q.HasIPProto = true
	case "tos", "dsfield":
		q.TOS, err = parseDSField(w, v)
	}
	return err
}

func (p *queryParser) finish(q *Query) error {
	if !q.To.IsValid() {
		return &QueryError{Msg: "need a destination address (to ADDR)"}
	}
	if q.From.IsValid() && q.From.Is4() != q.To.Is4() {
		return &QueryError{Word: "from", Value: q.From.String(), Msg: "is not of the destination's address family"}
	}
	return nil
}

func parseQueryAddr(w, v string) (netip.Addr, error) {
	if a, ok := parseV4(v); ok {
		return u4(a), nil
	}
	if a, ok := parseV6(v); ok {
		return a.Unmap(), nil
	}
	s := v
	if i := strings.IndexByte(s, '/'); i >= 0 {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, &QueryError{Word: w, Value: v, Msg: "is not an IP address"}
		}
		if !pfx.IsSingleIP() {
			return netip.Addr{}, &QueryError{Word: w, Value: v, Msg: "a route query takes an address, not a prefix"}
		}
		s = s[:i]
	}
	if strings.IndexByte(s, '%') >= 0 {
		return netip.Addr{}, &QueryError{Word: w, Value: v, Msg: "an IPv6 zone is not accepted; use oif"}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &QueryError{Word: w, Value: v, Msg: "is not an IP address"}
	}
	return a.Unmap(), nil
}

// parseV6 parses the common IPv6 forms (hex groups with at most one
// "::", no embedded IPv4, no zone) exactly as netip.ParseAddr does;
// anything else reports !ok and goes to netip.
func parseV6(s string) (netip.Addr, bool) {
	var groups [8]uint16
	n, gap := 0, -1
	i := 0
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		gap, i = 0, 2
		if len(s) == 2 {
			return netip.IPv6Unspecified(), true
		}
	}
	for i < len(s) {
		if n == 8 {
			return netip.Addr{}, false
		}
		var v uint32
		j := i
		for j < len(s) && j-i < 5 {
			c := s[j]
			var d byte
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				d = c - 'A' + 10
			default:
				goto end
			}
			v = v<<4 | uint32(d)
			j++
		}
	end:
		if j == i || j-i > 4 {
			return netip.Addr{}, false
		}
		groups[n] = uint16(v)
		n++
		i = j
		if i == len(s) {
			break
		}
		if s[i] != ':' {
			return netip.Addr{}, false
		}
		i++
		if i < len(s) && s[i] == ':' {
			if gap >= 0 {
				return netip.Addr{}, false
			}
			gap = n
			i++
			if i == len(s) {
				break
			}
		} else if i == len(s) {
			return netip.Addr{}, false
		}
	}
	if gap < 0 && n != 8 || gap >= 0 && n == 8 {
		return netip.Addr{}, false
	}
	var b [16]byte
	if gap < 0 {
		gap = n
	}
	for k := 0; k < gap; k++ {
		b[2*k], b[2*k+1] = byte(groups[k]>>8), byte(groups[k])
	}
	tail := n - gap
	for k := 0; k < tail; k++ {
		p := 8 - tail + k
		b[2*p], b[2*p+1] = byte(groups[gap+k]>>8), byte(groups[gap+k])
	}
	return netip.AddrFrom16(b), true
}

// parseV4 parses a dotted-quad IPv4 address exactly as netip.ParseAddr
// does (four decimal fields, no leading zeros), quickly.
func parseV4(s string) (uint32, bool) {
	var v, field uint32
	dots, digits := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && field == 0 {
				return 0, false
			}
			field = field*10 + uint32(c-'0')
			digits++
			if field > 255 {
				return 0, false
			}
		case c == '.':
			if digits == 0 || dots == 3 {
				return 0, false
			}
			v = v<<8 | field
			field, digits = 0, 0
			dots++
		default:
			return 0, false
		}
	}
	if dots != 3 || digits == 0 {
		return 0, false
	}
	return v<<8 | field, true
}

func parseDev(w, v string) (string, error) {
	if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t\n:") {
		return "", &QueryError{Word: w, Value: v, Msg: "is not a device name"}
	}
	return v, nil
}

// parseNum32 parses like strtoul(s, 0) into 32 bits.
func parseNum32(w, v string) (uint32, error) {
	n, ok := parseCNum(v)
	if !ok || n > 0xffffffff {
		return 0, &QueryError{Word: w, Value: v, Msg: "is not a number (decimal, 0x-hex or 0-octal, up to 32 bits)"}
	}
	return uint32(n), nil
}

// parseCNum parses like C's strtoul(v, &end, 0) with the whole string
// consumed: decimal, 0x-hex or 0-octal.
func parseCNum(v string) (uint64, bool) {
	if v == "" {
		return 0, false
	}
	base, i := uint64(10), 0
	switch {
	case len(v) > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X'):
		base, i = 16, 2
	case len(v) > 1 && v[0] == '0':
		base, i = 8, 1
	}
	var n uint64
	for ; i < len(v); i++ {
		c := v[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base || n > (^uint64(0)-d)/base {
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}

func parseProto(v string) (uint8, error) {
	switch v {
	case "tcp":
		return protoTCP, nil
	case "udp":
		return protoUDP, nil
	case "icmp":
		return protoICMP, nil
	case "ipv6-icmp", "icmpv6":
		return protoICMPv6, nil
	}
	n, ok := parseCNum(v)
	if !ok || n > 255 {
		return 0, &QueryError{Word: "ipproto", Value: v, Msg: "is not a protocol (tcp, udp, icmp, ipv6-icmp or a number)"}
	}
	return uint8(n), nil
}

func parseDSField(w, v string) (uint8, error) {
	s := v
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	n, err := strconv.ParseUint(s, 16, 8)
	if err != nil || strings.ContainsAny(s, "_+-") {
		return 0, &QueryError{Word: w, Value: v, Msg: "is not a hexadecimal TOS byte (iproute2 reads tos in hex: 10 means 0x10)"}
	}
	return uint8(n), nil
}

// String renders the query in `ip route get` words.
func (q Query) String() string {
	var b strings.Builder
	if q.FibMatch {
		b.WriteString("fibmatch ")
	}
	b.WriteString("to ")
	b.WriteString(q.To.String())
	if q.From.IsValid() {
		b.WriteString(" from " + q.From.String())
	}
	if q.IIF != "" {
		b.WriteString(" iif " + q.IIF)
	}
	if q.OIF != "" {
		b.WriteString(" oif " + q.OIF)
	}
	if q.Mark != 0 {
		fmt.Fprintf(&b, " mark 0x%x", q.Mark)
	}
	if q.HasIPProto {
		fmt.Fprintf(&b, " ipproto %d", q.IPProto)
	}
	if q.SPort != 0 {
		fmt.Fprintf(&b, " sport %d", q.SPort)
	}
	if q.DPort != 0 {
		fmt.Fprintf(&b, " dport %d", q.DPort)
	}
	if q.HasUID {
		fmt.Fprintf(&b, " uid %d", q.UID)
	}
	if q.TOS != 0 {
		fmt.Fprintf(&b, " tos 0x%x", q.TOS)
	}
	return b.String()
}

// qflow is a query resolved against the FIB's devices.
type qflow struct {
	v6       bool
	dst, src netip.Addr
	iif, oif *link
	mark     uint32
	uid      uint32
	uidSet   bool
	tos      uint8
	proto    uint8
	protoSet bool
	sport    uint16
	dport    uint16
	fibmatch bool
}
