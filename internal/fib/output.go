package fib

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tunroute/tunroute/internal/state"
)

// JSON returns the result as one JSON object: the keys of
// `ip -j -d route get` plus "trace" (and "possible"/"uncertain" when the
// snapshot cannot determine the answer); a failed lookup has "error".
func (r *Result) JSON() []byte { return r.AppendJSON(nil) }

// MarshalJSON implements json.Marshaler.
func (r *Result) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// AppendJSON appends the JSON object to b, without a newline.
func (r *Result) AppendJSON(b []byte) []byte {
	return r.appendJSON(b, true)
}

// AppendAnswerJSON appends the JSON object without "trace": the keys of
// `ip -j -d route get` (and "error", "possible", "uncertain").
func (r *Result) AppendAnswerJSON(b []byte) []byte {
	return r.appendJSON(b, false)
}

func (r *Result) appendJSON(b []byte, trace bool) []byte {
	b = append(b, '{')
	first := true
	key := func(k string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
	}
	if r.Error != "" {
		if r.Query.To.IsValid() {
			key("dst")
			b = appendAddrJSON(b, r.Query.To)
		}
		key("error")
		b = appendJSONString(b, r.errorText())
	} else {
		key("type")
		b = appendJSONString(b, typeName(r.Type))
		key("dst")
		switch {
		case r.fibMatch && r.DstPrefix.Bits() == 0:
			b = append(b, `"default"`...)
		case r.fibMatch && r.DstPrefix.IsSingleIP():
			b = appendAddrJSON(b, r.DstPrefix.Addr())
		case r.fibMatch:
			b = append(b, '"')
			b = r.DstPrefix.AppendTo(b)
			b = append(b, '"')
		default:
			b = appendAddrJSON(b, r.Dst)
		}
		if r.From.IsValid() {
			key("from")
			if r.From == v6zero {
				b = append(b, `"::"`...)
			} else {
				b = appendAddrJSON(b, r.From)
			}
		} else if r.SrcPrefix.IsValid() {
			key("from")
			b = append(b, '"')
			b = r.SrcPrefix.AppendTo(b)
			b = append(b, '"')
		}
		if r.NHID != 0 {
			key("nhid")
			b = appendUint(b, uint64(r.NHID))
		}
		if r.TOS != 0 {
			key("tos")
			b = append(b, '"', '0', 'x', hexDigits[r.TOS>>4], hexDigits[r.TOS&0xf], '"')
		}
		if r.Gateway.IsValid() {
			if r.Gateway.Is4() == (r.Family == 4) {
				key("gateway")
				b = r.fib.appendKnownAddrJSON(b, r.Gateway)
			} else {
				key("via")
				b = append(b, `{"family":"`...)
				if r.Gateway.Is4() {
					b = append(b, "inet"...)
				} else {
					b = append(b, "inet6"...)
				}
				b = append(b, `","host":`...)
				b = appendAddrJSON(b, r.Gateway)
				b = append(b, '}')
			}
		}
		if r.Dev != "" {
			key("dev")
			if r.devL != nil && r.devL.name == r.Dev {
				b = append(b, r.devL.jname...)
			} else {
				b = appendJSONString(b, r.Dev)
			}
		}
		if r.Table != 0 {
			key("table")
			b = append(b, '"')
			b = appendTableName(b, r.Table)
			b = append(b, '"')
		}
		if r.has&hasProtocol != 0 {
			key("protocol")
			b = appendJSONString(b, protoName(r.Protocol))
		}
		if r.has&hasScope != 0 {
			key("scope")
			b = appendJSONString(b, scopeName(r.Scope))
		}
		if r.PrefSrc.IsValid() {
			key("prefsrc")
			b = r.fib.appendKnownAddrJSON(b, r.PrefSrc)
		}
		if r.has&hasMetric != 0 {
			key("metric")
			b = appendUint(b, uint64(r.Metric))
		}
		key("flags")
		if r.Flags == 0 {
			b = append(b, '[', ']')
		} else {
			b = appendFlagsJSON(b, r.Flags)
		}
		if r.Mark != 0 && r.Family == 4 {
			key("mark")
			b = appendUint(b, uint64(r.Mark))
		}
		if r.has&hasUID != 0 && r.Family == 4 {
			key("uid")
			b = appendUint(b, uint64(r.UID))
		}
		if r.has&hasCache != 0 && r.Family == 4 {
			key("cache")
			b = appendFlagNamesJSON(b, r.Cache, cacheFlagNames)
		}
		if r.MTU != 0 {
			key("metrics")
			b = append(b, `[{"mtu":`...)
			b = strconv.AppendUint(b, uint64(r.MTU), 10)
			b = append(b, `}]`...)
		}
		if r.IIF != "" {
			key("iif")
			if r.iifL != nil && r.iifL.name == r.IIF {
				b = append(b, r.iifL.jname...)
			} else {
				b = appendJSONString(b, r.IIF)
			}
		}
		if r.has&hasPref != 0 {
			key("pref")
			b = appendJSONString(b, prefName(r.Pref))
		}
		if r.NHInfo != nil {
			key("nh_info")
			b = appendNHInfoJSON(b, r.NHInfo)
		}
		if len(r.Nexthops) > 0 {
			key("nexthops")
			b = appendNexthopsJSON(b, r.Nexthops, r.Family, true)
		}
		if len(r.Possible) > 0 {
			key("possible")
			b = appendNexthopsJSON(b, r.Possible, r.Family, false)
		}
	}
	if len(r.Uncertain) > 0 {
		key("uncertain")
		b = append(b, '[')
		for i, u := range r.Uncertain {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, u)
		}
		b = append(b, ']')
	}
	if len(r.Otherwise) > 0 {
		key("otherwise")
		b = append(b, '[')
		for i := range r.Otherwise {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"if":`...)
			b = appendJSONString(b, r.Otherwise[i].If)
			b = append(b, `,"answer":`...)
			b = append(b, r.Otherwise[i].Answer...)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if trace {
		key("trace")
		b = r.appendTraceJSON(b)
	}
	return append(b, '}')
}

func (r *Result) errorText() string {
	if r.err == errNoDevice {
		return r.Error
	}
	return r.Error
}

// appendNHInfoJSON appends a nexthop object as `ip -j -d nexthop` shows
// it.
func appendNHInfoJSON(b []byte, o *state.NexthopObject) []byte {
	b = append(b, `{"id":`...)
	b = appendUint(b, uint64(o.ID))
	if len(o.Group) > 0 {
		b = append(b, `,"group":[`...)
		for i, g := range o.Group {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendUint(b, uint64(g.ID))
			if g.Weight > 1 {
				b = append(b, `,"weight":`...)
				b = appendUint(b, uint64(g.Weight))
			}
			b = append(b, '}')
		}
		b = append(b, ']')
		if o.GroupKind == state.NHGroupResilient {
			b = append(b, `,"type":"resilient"`...)
		}
		if rp := o.Resilient; rp != nil {
			b = append(b, `,"resilient_args":{"buckets":`...)
			b = appendUint(b, uint64(rp.Buckets))
			b = append(b, `,"idle_timer":`...)
			b = appendUint(b, uint64(rp.IdleTimer))
			b = append(b, `,"unbalanced_timer":`...)
			b = appendUint(b, uint64(rp.UnbalancedTimer))
			b = append(b, `,"unbalanced_time":`...)
			b = appendUint(b, rp.UnbalancedTime)
			b = append(b, '}')
		}
	}
	if o.Gateway.IsValid() {
		b = append(b, `,"gateway":`...)
		b = appendAddrJSON(b, o.Gateway)
	}
	if o.Dev != "" {
		b = append(b, `,"dev":`...)
		b = appendJSONString(b, o.Dev)
	}
	b = append(b, `,"scope":`...)
	b = appendJSONString(b, scopeName(o.Scope))
	if o.Blackhole {
		b = append(b, `,"blackhole":null`...)
	}
	b = append(b, `,"protocol":`...)
	b = appendJSONString(b, protoName(o.Protocol))
	b = append(b, `,"flags":`...)
	if o.Flags == 0 {
		b = append(b, '[', ']')
	} else {
		b = appendFlagsJSON(b, uint32(o.Flags))
	}
	return append(b, '}')
}

func appendNexthopsJSON(b []byte, nhs []Nexthop, fam int, weights bool) []byte {
	b = append(b, '[')
	for i := range nhs {
		nh := &nhs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep := false
		if nh.Gateway.IsValid() {
			if nh.Gateway.Is4() == (fam == 4) {
				b = append(b, `"gateway":`...)
				b = appendAddrJSON(b, nh.Gateway)
			} else {
				b = append(b, `"via":{"family":"inet6","host":`...)
				b = appendAddrJSON(b, nh.Gateway)
				b = append(b, '}')
			}
			sep = true
		}
		if nh.Dev != "" {
			if sep {
				b = append(b, ',')
			}
			b = append(b, `"dev":`...)
			b = appendJSONString(b, nh.Dev)
			sep = true
		}
		if nh.PrefSrc.IsValid() {
			if sep {
				b = append(b, ',')
			}
			b = append(b, `"prefsrc":`...)
			b = appendAddrJSON(b, nh.PrefSrc)
			sep = true
		}
		if weights {
			if sep {
				b = append(b, ',')
			}
			b = append(b, `"weight":`...)
			b = strconv.AppendInt(b, int64(nh.Weight), 10)
			b = append(b, `,"flags":`...)
			b = appendFlagsJSON(b, nh.Flags)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendFlagsJSON(b []byte, flags uint32) []byte {
	return appendFlagNamesJSON(b, flags, rtFlagNames)
}

// appendFlagNamesJSON renders the names of the bits set in flags as a
// JSON array, in the order of names.
func appendFlagNamesJSON(b []byte, flags uint32, names []flagName) []byte {
	b = append(b, '[')
	n := 0
	for _, fl := range names {
		if flags&fl.bit != 0 {
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = append(b, '"')
			b = append(b, fl.name...)
			b = append(b, '"')
		}
	}
	return append(b, ']')
}

var verdictJSON = [...]string{
	vNone: "", vRoute: `,"verdict":"route"`, vNoRoute: `,"verdict":"no route"`, vNoTable: `,"verdict":"no such table"`,
	vThrow: `,"verdict":"throw"`, vErrorRoute: `,"verdict":"error route"`, vSuppressedPlen: `,"verdict":"suppressed (prefix length)"`,
	vSuppressedGroup: `,"verdict":"suppressed (device group)"`, vGoto: `,"verdict":"goto"`,
	vUnresolved: `,"verdict":"goto target missing: skipped"`, vTargetNoMatch: `,"verdict":"goto target does not match"`,
	vNop: `,"verdict":"nop"`, vActionUnreachable: `,"verdict":"unreachable"`, vActionProhibit: `,"verdict":"prohibit"`,
	vActionBlackhole: `,"verdict":"blackhole"`,
}

func (r *Result) appendTraceJSON(b []byte) []byte {
	b = append(b, '[')
	for i := range r.Trace {
		s := &r.Trace[i]
		if i > 0 {
			b = append(b, ',')
		}
		switch s.kind {
		case stepRule:
			if s.verdict == vNoRoute && s.rule.jnoroute != "" && s.table == s.rule.table {
				b = append(b, s.rule.jnoroute...)
				continue
			}
			if s.verdict == vRoute && s.rule.jroute != "" && s.table == s.rule.table && s.ref.at != nil {
				b = append(b, s.rule.jroute...)
				b = r.fib.appendRouteText(b, &s.ref, true)
				b = append(b, '"', '}')
				continue
			}
			b = append(b, s.rule.jhead...)
			b = append(b, verdictJSON[s.verdict]...)
			switch s.verdict {
			case vRoute, vNoRoute, vNoTable, vThrow, vErrorRoute, vSuppressedPlen, vSuppressedGroup:
				b = append(b, `,"table":"`...)
				b = appendTableName(b, s.table)
				b = append(b, '"')
			case vGoto, vUnresolved:
				b = append(b, `,"target":`...)
				b = strconv.AppendInt(b, int64(s.arg), 10)
			}
			if s.verdict == vSuppressedPlen || s.verdict == vSuppressedGroup {
				b = append(b, `,"suppress":`...)
				b = strconv.AppendInt(b, int64(s.arg), 10)
			}
		case stepTable:
			b = append(b, `{"table":"`...)
			b = appendTableName(b, s.table)
			b = append(b, '"')
			b = append(b, verdictJSON[s.verdict]...)
			if s.note != nNone {
				b = append(b, `,"note":"`...)
				b = append(b, noteText[s.note]...)
				b = append(b, '"')
			}
		case stepNote:
			b = append(b, `{"note":"`...)
			b = append(b, noteText[s.note]...)
			b = append(b, '"')
			if s.dev != nil {
				b = append(b, `,"dev":`...)
				b = append(b, s.dev.jname...)
			}
			if s.addr != 0 {
				b = append(b, `,"addr":`...)
				b = appendAddrJSON(b, u4(s.addr))
			}
		}
		if s.ref.at != nil {
			b = append(b, `,"route":"`...)
			b = r.fib.appendRouteText(b, &s.ref, true)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// jsonSafe[c] is true for bytes that need no escaping in a JSON string.
var v6zero = netip.IPv6Unspecified()

var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

func appendJSONString(b []byte, s string) []byte {
	i := 0
	for i < len(s) && jsonSafe[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	return appendJSONStringSlow(b, s)
}

func appendJSONStringSlow(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		rn, size := utf8.DecodeRuneInString(s[i:])
		if rn == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// escapeTail JSON-escapes b[n:] in place (it allocates only when
// something needs escaping).
func escapeTail(b []byte, n int) []byte {
	for i := n; i < len(b); i++ {
		if !jsonSafe[b[i]] {
			tail := string(b[n:])
			q := appendJSONString(b[:n], tail)
			copy(q[n:], q[n+1:len(q)-1])
			return q[:len(q)-2]
		}
	}
	return b
}

// dec3 holds the decimal forms of 0-255.
var dec3 = func() (t [256]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return
}()

// appendAddr is netip.Addr.AppendTo with a fast path for IPv4.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		b = appendOctet(b, v[0])
		b = append(b, '.')
		b = appendOctet(b, v[1])
		b = append(b, '.')
		b = appendOctet(b, v[2])
		b = append(b, '.')
		return appendOctet(b, v[3])
	}
	return a.AppendTo(b)
}

func appendOctet(b []byte, v byte) []byte {
	switch {
	case v >= 100:
		return append(b, '0'+v/100, '0'+v/10%10, '0'+v%10)
	case v >= 10:
		return append(b, '0'+v/10, '0'+v%10)
	}
	return append(b, '0'+v)
}

// appendUint is strconv.AppendUint(b, v, 10) without the call overhead
// for small values.
func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, '0'+byte(v))
	}
	if v < 100 {
		return append(b, '0'+byte(v/10), '0'+byte(v%10))
	}
	return strconv.AppendUint(b, v, 10)
}

func appendAddrJSON(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	b = appendAddr(b, a)
	return append(b, '"')
}

// appendKnownAddr formats an address the FIB knows (a gateway or a local
// address), using the text precomputed for IPv6 ones.
func (f *FIB) appendKnownAddr(b []byte, a netip.Addr) []byte {
	if a.Is6() {
		if s, ok := f.addrText[a]; ok {
			return append(b, s...)
		}
	}
	return appendAddr(b, a)
}

func (f *FIB) appendKnownAddrJSON(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	b = f.appendKnownAddr(b, a)
	return append(b, '"')
}

func appendPrefix(b []byte, p netip.Prefix) []byte {
	b = appendAddr(b, p.Addr())
	b = append(b, '/')
	return appendUint(b, uint64(p.Bits()))
}

// appendRouteText renders a FIB entry for a trace, JSON-escaped when
// json is set, using the precomputed text of its attributes.
func (f *FIB) appendRouteText(b []byte, ref *routeRef, json bool) []byte {
	at := ref.at
	if at.rtext == "" || ref.t6 != nil && ref.t6.aliases[ref.alias].sibN > 1 || ref.t4 == nil && ref.t6 == nil {
		n := len(b)
		b = f.appendRoute(b, ref, false)
		if json {
			b = escapeTail(b, n)
		}
		return b
	}
	b = appendRouteType(b, at.typ)
	pfx, tos, metric := ref.key()
	v6 := ref.t6 != nil
	if v6 && ref.t6.nodes[ref.node].text != "" {
		b = append(b, ref.t6.nodes[ref.node].text...)
	} else {
		b = appendDst(b, pfx)
	}
	if at.src.IsValid() {
		b = append(b, " from "...)
		b = appendPrefix(b, at.src)
	}
	if tos != 0 {
		b = append(b, " tos 0x"...)
		b = append(b, hexDigits[tos>>4], hexDigits[tos&0xf])
	}
	if json {
		b = append(b, at.rjson...)
	} else {
		b = append(b, at.rtext...)
	}
	return appendRouteTail(b, at, metric, v6)
}

// appendRoute renders a FIB entry in `ip route` words.
func (f *FIB) appendRoute(b []byte, ref *routeRef, withTable bool) []byte {
	at := ref.at
	b = appendRouteType(b, at.typ)
	pfx, tos, metric := ref.key()
	v6 := ref.t6 != nil
	b = appendDst(b, pfx)
	if at.src.IsValid() {
		b = append(b, " from "...)
		b = at.src.AppendTo(b)
	}
	if tos != 0 {
		b = append(b, " tos 0x"...)
		b = strconv.AppendUint(b, uint64(tos), 16)
	}
	nhs := at.nhs
	if v6 {
		al := &ref.t6.aliases[ref.alias]
		if al.sibN > 1 {
			for k := int32(0); k < al.sibN; k++ {
				b = appendPath(b, &f.v6.attrs[ref.t6.aliases[al.sibFirst+k].attrs].nhs[0], true, at.typ)
			}
			nhs = nil
		}
	}
	b = appendNexthops(b, nhs, v6, at.typ)
	if withTable && at.table != state.TableMain {
		b = append(b, " table "...)
		b = appendTableName(b, at.table)
	}
	b = appendOrigin(b, at)
	return appendRouteTail(b, at, metric, v6)
}

// key is the FIB entry's prefix, TOS and metric.
func (ref *routeRef) key() (pfx netip.Prefix, tos uint8, metric uint32) {
	switch {
	case ref.t4 != nil:
		al := ref.t4.alias(ref.node, int(ref.alias))
		return ref.t4.prefix(ref.node), al.tos, al.metric
	case ref.t6 != nil:
		return ref.t6.nodes[ref.node].pfx, 0, ref.t6.aliases[ref.alias].metric
	}
	return netip.Prefix{}, 0, 0
}

// appendRouteType starts a route's text with its type, unless unicast.
func appendRouteType(b []byte, typ state.RouteType) []byte {
	if typ != state.RouteUnicast {
		b = append(b, typeName(typ)...)
		b = append(b, ' ')
	}
	return b
}

// appendDst renders a route's destination as ip does: "default", an
// address for a host route, else the prefix.
func appendDst(b []byte, pfx netip.Prefix) []byte {
	switch {
	case pfx.Bits() == 0:
		return append(b, "default"...)
	case pfx.IsSingleIP():
		return appendAddr(b, pfx.Addr())
	}
	return appendPrefix(b, pfx)
}

// appendRouteTail ends a route's text: metric (always for IPv6, as ip
// prints it), router preference, MTU.
func appendRouteTail(b []byte, at *rattrs, metric uint32, v6 bool) []byte {
	if metric != 0 || v6 {
		b = append(b, " metric "...)
		b = appendUint(b, uint64(metric))
	}
	if v6 && at.pref != 0 {
		b = append(b, " pref "...)
		b = append(b, prefName(at.pref)...)
	}
	if at.mtu != 0 {
		b = append(b, " mtu "...)
		b = strconv.AppendUint(b, uint64(at.mtu), 10)
	}
	return b
}

// appendPath renders one path of a multipath route.
// appendNexthops renders a route's one nexthop, or each path of a
// multipath route.
func appendNexthops(b []byte, nhs []nhop, v6 bool, typ state.RouteType) []byte {
	if len(nhs) == 1 {
		return appendNexthop(b, &nhs[0], v6, typ)
	}
	for i := range nhs {
		b = appendPath(b, &nhs[i], v6, typ)
	}
	return b
}

// appendOrigin renders what ip prints after a route's nexthops and table:
// its protocol (unless boot), scope (unless global) and preferred source.
func appendOrigin(b []byte, a *rattrs) []byte {
	if a.proto != 3 {
		b = append(b, " proto "...)
		b = append(b, protoName(a.proto)...)
	}
	if a.scope != 0 {
		b = append(b, " scope "...)
		b = append(b, scopeName(a.scope)...)
	}
	if a.prefsrc.IsValid() {
		b = append(b, " src "...)
		b = appendAddr(b, a.prefsrc)
	}
	return b
}

func appendPath(b []byte, nh *nhop, v6 bool, typ state.RouteType) []byte {
	b = append(b, " nexthop"...)
	b = appendNexthop(b, nh, v6, typ)
	if nh.weight > 1 {
		b = append(b, " weight "...)
		b = strconv.AppendInt(b, int64(nh.weight), 10)
	}
	return b
}

func appendNexthop(b []byte, nh *nhop, v6 bool, typ state.RouteType) []byte {
	if nh.gw.IsValid() {
		if nh.gw.Is6() != v6 {
			b = append(b, " via inet6 "...)
		} else {
			b = append(b, " via "...)
		}
		b = appendAddr(b, nh.gw)
	}
	if nh.dev != nil && !(v6 && routeTypeErr(uint8(typ)) != errOK) {
		b = append(b, " dev "...)
		b = append(b, nh.dev.name...)
	}
	if nh.onlink {
		b = append(b, " onlink"...)
	}
	if nh.dead {
		b = append(b, " dead"...)
	}
	if nh.linkdown {
		b = append(b, " linkdown"...)
	}
	return b
}

// Text is the human explanation: one line per rule tried, notes, then the
// verdict line, e.g.
//
//	203.0.113.7 via 10.8.0.1 dev tun0 src 10.8.0.2, table 10, rule 5000 from 10.8.0.2 iif lo
func (r *Result) Text() string {
	var b []byte
	for i := range r.Trace {
		s := &r.Trace[i]
		switch s.kind {
		case stepRule:
			b = append(b, "rule "...)
			b = strconv.AppendUint(b, uint64(s.rule.pref), 10)
			b = append(b, ": "...)
			b = append(b, s.rule.text...)
			b = append(b, "  ->  "...)
			b = r.appendStepVerdict(b, s)
		case stepTable:
			b = append(b, "table "...)
			b = appendTableName(b, s.table)
			if s.note != nNone {
				b = append(b, " ("...)
				b = append(b, noteText[s.note]...)
				b = append(b, ')')
			}
			b = append(b, "  ->  "...)
			b = r.appendStepVerdict(b, s)
		case stepNote:
			b = append(b, "note: "...)
			b = append(b, noteText[s.note]...)
			if s.dev != nil {
				b = append(b, ' ')
				b = append(b, s.dev.name...)
			}
			if s.addr != 0 {
				b = append(b, ' ')
				b = appendAddr(b, u4(s.addr))
			}
		}
		b = append(b, '\n')
	}
	b = r.appendVerdictLine(b)
	b = append(b, '\n')
	for i := range r.Possible {
		p := &r.Possible[i]
		b = append(b, "possible:"...)
		if p.Gateway.IsValid() {
			b = append(b, " via "...)
			b = p.Gateway.AppendTo(b)
		}
		b = append(b, " dev "...)
		b = append(b, p.Dev...)
		if p.PrefSrc.IsValid() {
			b = append(b, " src "...)
			b = p.PrefSrc.AppendTo(b)
		}
		b = append(b, '\n')
	}
	for _, u := range r.Uncertain {
		b = append(b, "uncertain: "...)
		b = append(b, u...)
		b = append(b, '\n')
	}
	for i := range r.Otherwise {
		o := &r.Otherwise[i]
		b = append(b, "otherwise, if "...)
		b = append(b, o.If...)
		b = append(b, ": "...)
		b = append(b, o.Line...)
		b = append(b, '\n')
	}
	return string(b)
}

func (r *Result) appendStepVerdict(b []byte, s *Step) []byte {
	switch s.verdict {
	case vRoute:
		b = append(b, "table "...)
		b = appendTableName(b, s.table)
		b = append(b, ": "...)
	case vNoRoute:
		b = append(b, "no route in table "...)
		return appendTableName(b, s.table)
	case vNoTable:
		b = append(b, "table "...)
		b = appendTableName(b, s.table)
		return append(b, " does not exist"...)
	case vThrow:
		b = append(b, "throw in table "...)
		b = appendTableName(b, s.table)
		b = append(b, ": "...)
	case vErrorRoute:
		b = append(b, "table "...)
		b = appendTableName(b, s.table)
		b = append(b, ": "...)
	case vSuppressedPlen:
		b = append(b, "suppressed (prefix length <= "...)
		b = strconv.AppendInt(b, int64(s.arg), 10)
		b = append(b, "): "...)
	case vSuppressedGroup:
		b = append(b, "suppressed (device group "...)
		b = strconv.AppendInt(b, int64(s.arg), 10)
		b = append(b, "): "...)
	case vGoto:
		b = append(b, "goto "...)
		return strconv.AppendInt(b, int64(s.arg), 10)
	case vUnresolved:
		b = append(b, "goto "...)
		b = strconv.AppendInt(b, int64(s.arg), 10)
		return append(b, ": no such rule, skipped"...)
	case vTargetNoMatch:
		return append(b, "goto target does not match, continue after it"...)
	case vNop:
		return append(b, "nop"...)
	case vActionUnreachable:
		return append(b, "unreachable: Network is unreachable"...)
	case vActionProhibit:
		return append(b, "prohibit: Permission denied"...)
	case vActionBlackhole:
		return append(b, "blackhole: Invalid argument"...)
	}
	if s.ref.at != nil {
		b = r.fib.appendRouteText(b, &s.ref, false)
	}
	return b
}

func (r *Result) appendVerdictLine(b []byte) []byte {
	if r.Error != "" {
		if r.Query.To.IsValid() {
			b = r.Query.To.AppendTo(b)
			b = append(b, ": "...)
		}
		b = append(b, r.errorText()...)
		if r.ref.at != nil {
			b = append(b, ", route "...)
			b = r.fib.appendRouteText(b, &r.ref, false)
			if r.ref.at.table != 0 {
				b = append(b, " in table "...)
				b = appendTableName(b, r.ref.at.table)
			}
		}
		return r.appendRuleRef(b)
	}
	b = appendRouteType(b, r.Type)
	if r.fibMatch && r.DstPrefix.Bits() == 0 {
		b = append(b, "default"...)
	} else if r.fibMatch {
		b = r.DstPrefix.AppendTo(b)
	} else {
		b = r.Dst.AppendTo(b)
	}
	if r.From.IsValid() && !(r.Family == 6 && r.From.IsUnspecified()) {
		b = append(b, " from "...)
		b = r.From.AppendTo(b)
	}
	if r.Gateway.IsValid() {
		b = append(b, " via "...)
		b = r.Gateway.AppendTo(b)
	}
	if r.Dev != "" {
		b = append(b, " dev "...)
		b = append(b, r.Dev...)
	}
	if r.PrefSrc.IsValid() {
		b = append(b, " src "...)
		b = r.PrefSrc.AppendTo(b)
	}
	if r.IIF != "" {
		b = append(b, " iif "...)
		b = append(b, r.IIF...)
	}
	if r.Table != 0 {
		b = append(b, ", table "...)
		b = appendTableName(b, r.Table)
	}
	return r.appendRuleRef(b)
}

// appendRuleRef ends a verdict line with the rule that chose the route.
func (r *Result) appendRuleRef(b []byte) []byte {
	if r.HasRule {
		b = append(b, ", rule "...)
		b = strconv.AppendUint(b, uint64(r.RulePref), 10)
		b = append(b, ' ')
		b = append(b, r.RuleText...)
	}
	return b
}

// IPText renders the result exactly as `ip route get` (iproute2 6.1)
// prints it, with -d when details is set; errors as
// "RTNETLINK answers: ...".
func (r *Result) IPText(details bool) string {
	var sb strings.Builder
	if r.Error != "" {
		switch r.err {
		case errNoDevice:
			return r.Error + "\n"
		case errPROTO:
			return "Error: Unsupported ip proto.\n"
		}
		return "RTNETLINK answers: " + r.Error + "\n"
	}
	w := func(s ...string) {
		for _, x := range s {
			sb.WriteString(x)
		}
	}
	if r.Type != state.RouteUnicast || details {
		w(typeName(r.Type), " ")
	}
	if r.fibMatch {
		switch {
		case r.DstPrefix.Bits() == 0:
			w("default ")
		case r.DstPrefix.IsSingleIP():
			w(r.DstPrefix.Addr().String(), " ")
		default:
			w(r.DstPrefix.String(), " ")
		}
	} else {
		w(r.Dst.String(), " ")
	}
	if r.From.IsValid() {
		w("from ", r.From.String(), " ")
	} else if r.SrcPrefix.IsValid() {
		w("from ", r.SrcPrefix.String(), " ")
	}
	if r.TOS != 0 {
		w("tos 0x", string([]byte{hexDigits[r.TOS>>4], hexDigits[r.TOS&0xf]}), " ")
	}
	if r.Gateway.IsValid() {
		if r.Gateway.Is4() == (r.Family == 4) {
			w("via ", r.Gateway.String(), " ")
		} else if r.Gateway.Is6() {
			w("via inet6 ", r.Gateway.String(), " ")
		} else {
			w("via inet ", r.Gateway.String(), " ")
		}
	}
	if r.Dev != "" {
		w("dev ", r.Dev, " ")
	}
	if r.Table != 0 && (r.Table != state.TableMain || details) {
		w("table ", tableName(r.Table), " ")
	}
	if r.has&hasProtocol != 0 && (r.Protocol != 3 || details) {
		w("proto ", protoName(r.Protocol), " ")
	}
	if r.has&hasScope != 0 && (r.Scope != 0 || details) {
		w("scope ", scopeName(r.Scope), " ")
	}
	if r.PrefSrc.IsValid() {
		w("src ", r.PrefSrc.String(), " ")
	}
	if r.has&hasMetric != 0 {
		w("metric ", strconv.FormatUint(uint64(r.Metric), 10), " ")
	}
	for _, fl := range rtFlagNames {
		if r.Flags&fl.bit != 0 {
			w(fl.name, " ")
		}
	}
	if r.Mark != 0 && r.Family == 4 {
		if r.Mark >= 16 {
			w("mark 0x", strconv.FormatUint(uint64(r.Mark), 16), " ")
		} else {
			w("mark ", strconv.FormatUint(uint64(r.Mark), 10), " ")
		}
	}
	if r.has&hasUID != 0 && r.Family == 4 {
		w("uid ", strconv.FormatUint(uint64(r.UID), 10), " ")
	}
	if r.has&hasCache != 0 && r.Family == 4 {
		w("\n    cache ")
		if r.Cache != 0 {
			var names []string
			for _, c := range cacheFlagNames {
				if r.Cache&c.bit != 0 {
					names = append(names, c.name)
				}
			}
			w("<", strings.Join(names, ","), "> ")
		}
	}
	if r.MTU != 0 {
		w("mtu ", strconv.FormatUint(uint64(r.MTU), 10), " ")
	}
	if r.IIF != "" {
		w("iif ", r.IIF, " ")
	}
	if r.has&hasPref != 0 {
		w("pref ", prefName(r.Pref))
	}
	for i := range r.Nexthops {
		nh := &r.Nexthops[i]
		w("\n\tnexthop ")
		if nh.Gateway.IsValid() {
			w("via ", nh.Gateway.String(), " ")
		}
		w("dev ", nh.Dev, " weight ", strconv.Itoa(nh.Weight), " ")
		for _, fl := range rtFlagNames {
			if nh.Flags&fl.bit != 0 {
				w(fl.name, " ")
			}
		}
	}
	w("\n")
	return sb.String()
}
