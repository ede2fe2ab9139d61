package state

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"runtime"
	"sync"
	"unsafe"
)

// The tables of the objects the fast path reads (fastparse_fields.go).
var (
	stateKeys      = &objectFields{keys: jsonKeys(reflect.TypeFor[State]())}
	routeFields    = fieldsFor[Route]()
	addrFields     = fieldsFor[Addr]()
	routeSetFields = fieldsFor[RouteSet]()
)

// The fast path of Parse. A snapshot's bulk is its routes (and the
// destinations of route sets, and addresses); encoding/json with
// TextUnmarshalers on every enum spends seconds on a million of them. This
// decoder reads those three arrays straight from the bytes and hands the
// rest of the document, with the arrays replaced by null, to encoding/json.
//
// It accepts only a strict subset of what encoding/json accepts (exact key
// spelling, no duplicate keys, strings without escapes or non-ASCII bytes,
// integers without fraction or exponent, known flag names, ...), and for
// that subset gives exactly encoding/json's result. Anything else, valid or
// not, makes it give up: Parse then decodes the whole input with
// encoding/json, which produces the same result or the positioned error.

// parseFast decodes data; ok is false when the input is outside the fast
// path's subset (the caller falls back to encoding/json).
func parseFast(data []byte) (s *State, ok bool) {
	p := &fastParser{data: data}
	p.ws()
	if !p.eat('{') {
		return nil, false
	}
	s = &State{}
	type span struct{ start, end int }
	var cut []span // ranges of data decoded here, replaced by null below
	var seen uint32
	p.ws()
	if !p.eat('}') {
		for {
			p.ws()
			key, ok := p.str()
			if !ok {
				return nil, false
			}
			p.ws()
			if !p.eat(':') {
				return nil, false
			}
			p.ws()
			start := p.i
			k := stateKeys.find(key, 0)
			if k < 0 || !once(&seen, 1<<k) {
				return nil, false
			}
			decoded := true
			switch string(key) {
			case "addrs":
				ok = list(p, &s.Addrs, func(a *Addr) bool { return p.fields(addrFields, unsafe.Pointer(a)) })
			case "routes":
				ok = p.routes(&s.Routes)
			case "route_sets":
				ok = list(p, &s.RouteSets, func(rs *RouteSet) bool { return p.fields(routeSetFields, unsafe.Pointer(rs)) })
			default:
				ok, decoded = p.skip(), false // encoding/json reads it below
			}
			if !ok {
				return nil, false
			}
			if decoded {
				cut = append(cut, span{start, p.i})
			}
			p.ws()
			if p.eat('}') {
				break
			}
			if !p.eat(',') {
				return nil, false
			}
		}
	}
	p.ws()
	if p.i != len(data) {
		return nil, false
	}
	// The rest goes through encoding/json, exactly as in the slow path.
	var rest []byte
	if len(cut) == 0 {
		rest = data
	} else {
		prev := 0
		for _, c := range cut {
			rest = append(rest, data[prev:c.start]...)
			rest = append(rest, "null"...)
			prev = c.end
		}
		rest = append(rest, data[prev:]...)
	}
	addrs, routes, sets := s.Addrs, s.Routes, s.RouteSets
	*s = State{}
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, false
	}
	s.Addrs, s.Routes, s.RouteSets = addrs, routes, sets
	return s, true
}

type fastParser struct {
	data []byte
	i    int
	// nexthops is a slab the routes' nexthop slices are cut from.
	nexthops []Nexthop
	// names interns device names.
	names map[string]string
}

func (p *fastParser) ws() {
	i, d := p.i, p.data
	for i < len(d) {
		c := d[i]
		if c > ' ' || (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
			break
		}
		i++
	}
	p.i = i
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) lit(s string) bool {
	if len(p.data)-p.i >= len(s) && string(p.data[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes and returns its
// contents (aliasing data).
func (p *fastParser) str() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		if c == '"' {
			p.i++
			return p.data[start : p.i-1], true
		}
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// name reads a string and interns it.
func (p *fastParser) name() (string, bool) {
	b, ok := p.str()
	if !ok {
		return "", false
	}
	if s, ok := p.names[string(b)]; ok {
		return s, true
	}
	if p.names == nil {
		p.names = make(map[string]string)
	}
	s := string(b)
	p.names[s] = s
	return s, true
}

// uint reads a JSON integer without sign, fraction or exponent, at most max.
func (p *fastParser) uint(max uint64) (uint64, bool) {
	start := p.i
	var v uint64
	for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
		if p.i-start >= 19 {
			return 0, false
		}
		v = v*10 + uint64(p.data[p.i]-'0')
		p.i++
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.data[start] == '0') || v > max {
		return 0, false
	}
	if p.i < len(p.data) {
		switch p.data[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return v, true
}

func (p *fastParser) int() (int, bool) {
	neg := p.eat('-')
	v, ok := p.uint(1<<31 - 1)
	if !ok {
		return 0, false
	}
	if neg {
		return -int(v), true
	}
	return int(v), true
}

func (p *fastParser) u32() (uint32, bool) { v, ok := p.uint(1<<32 - 1); return uint32(v), ok }
func (p *fastParser) u8() (uint8, bool)   { v, ok := p.uint(255); return uint8(v), ok }

// prefix reads a netip.Prefix as its UnmarshalText does.
func (p *fastParser) prefix() (netip.Prefix, bool) {
	b, ok := p.str()
	if !ok {
		return netip.Prefix{}, false
	}
	if len(b) == 0 {
		return netip.Prefix{}, true
	}
	if a, bits, ok := prefix4(b); ok {
		return netip.PrefixFrom(netip.AddrFrom4(a), bits), true
	}
	pf, err := netip.ParsePrefix(string(b))
	return pf, err == nil
}

// addr reads a netip.Addr as its UnmarshalText does.
func (p *fastParser) addr() (netip.Addr, bool) {
	b, ok := p.str()
	if !ok {
		return netip.Addr{}, false
	}
	if len(b) == 0 {
		return netip.Addr{}, true
	}
	if a, ok := addr4(b); ok {
		return netip.AddrFrom4(a), true
	}
	a, err := netip.ParseAddr(string(b))
	return a, err == nil
}

// addr4 parses a dotted quad in the form netip.ParseAddr accepts (no
// leading zeros); false means "not sure", not "invalid".
func addr4(b []byte) ([4]byte, bool) {
	var a [4]byte
	i := 0
	for k := 0; k < 4; k++ {
		if k > 0 {
			if i >= len(b) || b[i] != '.' {
				return a, false
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 3 {
			v = v*10 + int(b[i]-'0')
			i++
		}
		if i == start || v > 255 || (i-start > 1 && b[start] == '0') {
			return a, false
		}
		a[k] = byte(v)
	}
	return a, i == len(b)
}

// prefix4 parses "a.b.c.d/n" in the form netip.ParsePrefix accepts.
func prefix4(b []byte) ([4]byte, int, bool) {
	j := bytes.IndexByte(b, '/')
	if j < 0 {
		return [4]byte{}, 0, false
	}
	a, ok := addr4(b[:j])
	if !ok {
		return a, 0, false
	}
	d := b[j+1:]
	bits := 0
	switch {
	case len(d) == 1 && d[0] >= '0' && d[0] <= '9':
		bits = int(d[0] - '0')
	case len(d) == 2 && d[0] >= '1' && d[0] <= '9' && d[1] >= '0' && d[1] <= '9':
		bits = int(d[0]-'0')*10 + int(d[1]-'0')
	default:
		return a, 0, false
	}
	return a, bits, bits <= 32
}

func (p *fastParser) routeType() (RouteType, bool) {
	b, ok := p.str()
	if !ok {
		return 0, false
	}
	switch string(b) {
	case "unicast":
		return RouteUnicast, true
	case "local":
		return RouteLocal, true
	case "broadcast":
		return RouteBroadcast, true
	case "blackhole":
		return RouteBlackhole, true
	case "unreachable":
		return RouteUnreachable, true
	case "prohibit":
		return RouteProhibit, true
	case "throw":
		return RouteThrow, true
	}
	var t RouteType
	return t, t.UnmarshalText(b) == nil
}

func (p *fastParser) protocol() (Protocol, bool) {
	b, ok := p.str()
	if !ok {
		return 0, false
	}
	switch string(b) {
	case "kernel":
		return 2, true
	case "boot":
		return 3, true
	case "static":
		return 4, true
	case ProtoName:
		return Proto, true
	case "unspec":
		return 0, true
	}
	var v Protocol
	return v, v.UnmarshalText(b) == nil
}

func (p *fastParser) scope() (Scope, bool) {
	b, ok := p.str()
	if !ok {
		return 0, false
	}
	switch string(b) {
	case "global":
		return ScopeUniverse, true
	case "link":
		return ScopeLink, true
	case "host":
		return ScopeHost, true
	}
	var v Scope
	return v, v.UnmarshalText(b) == nil
}

// flags reads a flag list of known names.
func (p *fastParser) flags(names flagNames) (uint32, bool) {
	if !p.eat('[') {
		return 0, false
	}
	p.ws()
	var v uint32
	if p.eat(']') {
		return 0, true
	}
	for {
		p.ws()
		b, ok := p.str()
		if !ok {
			return 0, false
		}
		bit := uint32(0)
		for k, n := range names {
			if n == string(b) {
				bit = k
				break
			}
		}
		if bit == 0 {
			return 0, false
		}
		v |= bit
		p.ws()
		if p.eat(']') {
			return v, true
		}
		if !p.eat(',') {
			return 0, false
		}
	}
}

// arrayForm is what array read: how encoding/json sets the slice.
type arrayForm int

const (
	arrayBad      arrayForm = iota // outside the fast path's subset
	arrayNull                      // null: a nil slice
	arrayEmpty                     // []: an empty, non-nil slice
	arrayElements                  // elements, each read by elem
)

// array reads null or a JSON array whose elements elem reads.
func (p *fastParser) array(elem func() bool) arrayForm {
	if p.lit("null") {
		return arrayNull
	}
	if !p.eat('[') {
		return arrayBad
	}
	p.ws()
	if p.eat(']') {
		return arrayEmpty
	}
	for {
		p.ws()
		if !elem() {
			return arrayBad
		}
		p.ws()
		if p.eat(']') {
			return arrayElements
		}
		if !p.eat(',') {
			return arrayBad
		}
	}
}

// slice is the slice encoding/json makes of an array of form k whose
// elements are xs.
func slice[T any](k arrayForm, xs []T) []T {
	switch k {
	case arrayNull:
		return nil
	case arrayEmpty:
		return []T{}
	}
	return xs
}

// once marks bit in seen and fails if it was already set.
func once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (p *fastParser) routes(out *[]Route) bool {
	if p.lit("null") {
		*out = nil
		return true
	}
	if !p.eat('[') {
		return false
	}
	p.ws()
	if p.eat(']') {
		*out = []Route{}
		return true
	}
	if rs, ok := p.routesParallel(); ok {
		*out = rs
		return true
	}
	var b routeBlocks
	if ended, ok := p.routeRun(&b, -1); !ok || !ended {
		return false
	}
	*out = flatten(b)
	return true
}

// routeBlocks collects routes in fixed-size blocks, so that a million of
// them are copied once (by flatten) instead of at every growth.
type routeBlocks [][]Route

const routeBlock = 1 << 14

func (b *routeBlocks) next() *Route {
	n := len(*b)
	if n == 0 || len((*b)[n-1]) == routeBlock {
		*b = append(*b, make([]Route, 0, routeBlock))
		n++
	}
	last := &(*b)[n-1]
	*last = append(*last, Route{})
	return &(*last)[len(*last)-1]
}

func flatten(bs ...routeBlocks) []Route {
	n := 0
	for _, b := range bs {
		for _, blk := range b {
			n += len(blk)
		}
	}
	out := make([]Route, 0, n)
	for _, b := range bs {
		for _, blk := range b {
			out = append(out, blk...)
		}
	}
	return out
}

// routeRun reads route elements of the routes array from p.i on, until
// the closing bracket (ended) or, when stop >= 0, until the next element
// starts exactly at stop.
func (p *fastParser) routeRun(b *routeBlocks, stop int) (ended, ok bool) {
	for {
		if !p.route(b.next()) {
			return false, false
		}
		p.ws()
		if p.eat(']') {
			return true, true
		}
		if !p.eat(',') {
			return false, false
		}
		p.ws()
		if stop >= 0 && p.i >= stop {
			return false, p.i == stop
		}
	}
}

// routesParallel splits a large routes array at element starts as State.Write
// indents them and reads the pieces concurrently. Each piece must end
// exactly where the next starts and the last at the array's close, so a
// split that is not at an element of this array (other layouts) fails the
// check and p reads the array alone.
func (p *fastParser) routesParallel() ([]Route, bool) {
	workers := min(runtime.GOMAXPROCS(0), 8)
	start := p.i
	if workers < 2 || len(p.data)-start < 1<<20 {
		return nil, false
	}
	mark := []byte("\n    {\n      \"table\"")
	bounds := []int{start}
	for k := 1; k < workers; k++ {
		from := max(start+k*(len(p.data)-start)/workers, bounds[len(bounds)-1]+1)
		j := bytes.Index(p.data[from:], mark)
		if j < 0 {
			break
		}
		bounds = append(bounds, from+j+5)
	}
	if len(bounds) < 2 {
		return nil, false
	}
	blocks := make([]routeBlocks, len(bounds))
	ends := make([]int, len(bounds))
	var wg sync.WaitGroup
	for k := range bounds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := &fastParser{data: p.data, i: bounds[k]}
			stop := -1
			if k+1 < len(bounds) {
				stop = bounds[k+1]
			}
			if ended, ok := q.routeRun(&blocks[k], stop); ok && ended == (stop < 0) {
				ends[k] = q.i
			}
		}()
	}
	wg.Wait()
	for _, e := range ends {
		if e == 0 {
			return nil, false
		}
	}
	p.i = ends[len(ends)-1]
	return flatten(blocks...), true
}

func (p *fastParser) route(r *Route) bool { return p.fields(routeFields, unsafe.Pointer(r)) }

// nexthopList reads a route's nexthops into one slab shared by all routes:
// a million routes with a path each make a few large allocations, not a
// million small ones.
func (p *fastParser) nexthopList(out *[]Nexthop, nexthop *objectFields) bool {
	n := 0
	k := p.array(func() bool {
		if n == len(p.nexthops) {
			slab := make([]Nexthop, max(4096, 2*n))
			copy(slab, p.nexthops[:n])
			p.nexthops = slab
		}
		p.nexthops[n] = Nexthop{}
		n++
		return p.fields(nexthop, unsafe.Pointer(&p.nexthops[n-1]))
	})
	*out = slice(k, p.nexthops[:n:n])
	p.nexthops = p.nexthops[n:]
	return k != arrayBad
}

// skip passes over one JSON value without checking it (encoding/json
// checks it later); it only has to find the value's end in valid input.
func (p *fastParser) skip() bool {
	depth := 0
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch c {
		case '"':
			p.i++
			for p.i < len(p.data) && p.data[p.i] != '"' {
				if p.data[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
			if p.i >= len(p.data) {
				return false
			}
			p.i++
			if depth == 0 {
				return true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return p.i > 0
			}
			depth--
			if depth == 0 {
				p.i++
				return true
			}
		case ',', ' ', '\n', '\t', '\r':
			if depth == 0 {
				return true
			}
		}
		p.i++
	}
	return depth == 0
}
