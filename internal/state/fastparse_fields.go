package state

import (
	"encoding"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"unsafe"
)

// The fast path reads a JSON object into a struct by a table built once
// from the struct's type: its fields' JSON keys (from their tags, as
// encoding/json names them), offsets and readers. A field added to Route,
// Nexthop, Addr, ... is then read here without a line of code, and the
// readers of the scalar types are the only per-type code. A field of a
// type no reader knows, like any input outside the subset, makes the fast
// path give up, so the result stays encoding/json's.

// fieldReader reads one JSON value into the field at.
type fieldReader func(p *fastParser, at unsafe.Pointer) bool

// objectFields is the table of one struct type.
type objectFields struct {
	keys    []string // in declaration order: the order State.Write writes them
	offsets []uintptr
	readers []fieldReader // nil: a type the fast path does not read
	// unsupported: the struct has a field encoding/json names in ways
	// this table does not follow (embedded, too many for a seen mask).
	unsupported bool
}

func fieldsFor[T any]() *objectFields { return fieldsOf(reflect.TypeFor[T]()) }

// fieldTables holds the tables built so far, so that a type that
// contains itself gets its table, not an endless recursion.
var fieldTables = map[reflect.Type]*objectFields{}

func fieldsOf(t reflect.Type) *objectFields {
	if f, ok := fieldTables[t]; ok {
		return f
	}
	f := &objectFields{}
	fieldTables[t] = f
	for _, sf := range jsonFields(t) {
		if sf.Anonymous {
			f.unsupported = true
			continue
		}
		f.keys = append(f.keys, jsonKey(sf))
		f.offsets = append(f.offsets, sf.Offset)
		f.readers = append(f.readers, readerFor(sf.Type))
	}
	if len(f.keys) > 32 {
		f.unsupported = true
	}
	return f
}

// jsonFields are the fields of struct t that encoding/json reads.
func jsonFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		sf := t.Field(i)
		if (sf.IsExported() || sf.Anonymous) && sf.Tag.Get("json") != "-" {
			out = append(out, sf)
		}
	}
	return out
}

// jsonKey is the key encoding/json gives a field.
func jsonKey(sf reflect.StructField) string {
	if key, _, _ := strings.Cut(sf.Tag.Get("json"), ","); key != "" {
		return key
	}
	return sf.Name
}

// jsonKeys are the keys of struct t's fields.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for _, sf := range jsonFields(t) {
		keys = append(keys, jsonKey(sf))
	}
	return keys
}

// find returns the index of key, trying first the field after the last
// one read (fields come in declaration order); -1 if there is none.
func (f *objectFields) find(key []byte, next int) int {
	if next < len(f.keys) && f.keys[next] == string(key) {
		return next
	}
	for k, name := range f.keys {
		if name == string(key) {
			return k
		}
	}
	return -1
}

// fields reads a JSON object into the struct at base by the table f. It
// fails on a key that is not f's spelling of a field, and on a key met
// twice (encoding/json would merge the two values).
func (p *fastParser) fields(f *objectFields, base unsafe.Pointer) bool {
	if f.unsupported || !p.eat('{') {
		return false
	}
	p.ws()
	if p.eat('}') {
		return true
	}
	var seen uint32
	next := 0
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return false
		}
		k := f.find(key, next)
		if k < 0 || f.readers[k] == nil || !once(&seen, 1<<k) {
			return false
		}
		next = k + 1
		p.ws()
		if !p.eat(':') {
			return false
		}
		p.ws()
		if !f.readers[k](p, unsafe.Add(base, f.offsets[k])) {
			return false
		}
		p.ws()
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

var (
	typeRouteType    = reflect.TypeFor[RouteType]()
	typeProtocol     = reflect.TypeFor[Protocol]()
	typeScope        = reflect.TypeFor[Scope]()
	typeNexthopFlags = reflect.TypeFor[NexthopFlags]()
	typeAddrFlags    = reflect.TypeFor[AddrFlags]()
	typePrefix       = reflect.TypeFor[netip.Prefix]()
	typeAddr         = reflect.TypeFor[netip.Addr]()
	typeNexthops     = reflect.TypeFor[[]Nexthop]()
	typePrefixes     = reflect.TypeFor[[]netip.Prefix]()
)

// readerFor returns the reader of a field of type t, or nil.
func readerFor(t reflect.Type) fieldReader {
	switch t {
	case typeRouteType:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*RouteType)(at), ok = p.routeType()
			return ok
		}
	case typeProtocol:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*Protocol)(at), ok = p.protocol()
			return ok
		}
	case typeScope:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*Scope)(at), ok = p.scope()
			return ok
		}
	case typeNexthopFlags:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*uint32)(at), ok = p.flags(nexthopFlagNames)
			return ok
		}
	case typeAddrFlags:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*uint32)(at), ok = p.flags(addrFlagNames)
			return ok
		}
	case typePrefix:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*netip.Prefix)(at), ok = p.prefix()
			return ok
		}
	case typeAddr:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*netip.Addr)(at), ok = p.addr()
			return ok
		}
	case typeNexthops:
		nexthop := fieldsFor[Nexthop]()
		return func(p *fastParser, at unsafe.Pointer) bool { return p.nexthopList((*[]Nexthop)(at), nexthop) }
	case typePrefixes:
		return func(p *fastParser, at unsafe.Pointer) bool {
			return list(p, (*[]netip.Prefix)(at), func(d *netip.Prefix) (ok bool) {
				*d, ok = p.prefix()
				return ok
			})
		}
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil // its own JSON form, which only encoding/json knows
	}
	if pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return func(p *fastParser, at unsafe.Pointer) bool {
			b, ok := p.str()
			return ok && reflect.NewAt(t, at).Interface().(encoding.TextUnmarshaler).UnmarshalText(b) == nil
		}
	}
	switch t.Kind() {
	case reflect.Uint8:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*uint8)(at), ok = p.u8()
			return ok
		}
	case reflect.Uint16:
		return func(p *fastParser, at unsafe.Pointer) bool {
			v, ok := p.uint(1<<16 - 1)
			*(*uint16)(at) = uint16(v)
			return ok
		}
	case reflect.Uint32:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*uint32)(at), ok = p.u32()
			return ok
		}
	case reflect.Int:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*int)(at), ok = p.int()
			return ok
		}
	case reflect.Bool:
		return func(p *fastParser, at unsafe.Pointer) bool {
			switch {
			case p.lit("true"):
				*(*bool)(at) = true
			case p.lit("false"):
				*(*bool)(at) = false
			default:
				return false
			}
			return true
		}
	case reflect.String:
		return func(p *fastParser, at unsafe.Pointer) (ok bool) {
			*(*string)(at), ok = p.name()
			return ok
		}
	case reflect.Struct:
		f := fieldsOf(t)
		return func(p *fastParser, at unsafe.Pointer) bool { return p.fields(f, at) }
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.Struct {
			return nil
		}
		f := fieldsOf(t.Elem())
		return func(p *fastParser, at unsafe.Pointer) bool {
			if p.lit("null") {
				*(*unsafe.Pointer)(at) = nil
				return true
			}
			v := reflect.New(t.Elem()).UnsafePointer()
			*(*unsafe.Pointer)(at) = v
			return p.fields(f, v)
		}
	}
	return nil
}

// list reads null (nil), [] (an empty non-nil slice) or an array whose
// elements elem reads into *out, as encoding/json fills a slice.
func list[T any](p *fastParser, out *[]T, elem func(*T) bool) bool {
	var xs []T
	k := p.array(func() bool {
		xs = append(xs, *new(T))
		return elem(&xs[len(xs)-1])
	})
	*out = slice(k, xs)
	return k != arrayBad
}
