package config

import "net/netip"

// keyed pairs a key of a mapping with where its value goes.
type keyed[T any] struct {
	key string
	dst *T
}

// scalarsInto reads, for each of fields whose key m has, the key's scalar
// with parse into the field's destination: the keys that take the same
// kind of value (local and remote, interval and timeout) read one way.
func scalarsInto[T any](m *mapping, fields []keyed[T], parse func(n node, s string) (T, error)) error {
	for _, f := range fields {
		n, ok := m.get(f.key)
		if !ok {
			continue
		}
		s, err := n.scalar()
		if err != nil {
			return err
		}
		v, err := parse(n, s)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	return nil
}

// addrScalar parses an IP address for scalarsInto.
func addrScalar(n node, s string) (netip.Addr, error) { return parseAddr(n.pos, s) }

// deviceScalar checks an interface name for scalarsInto.
func deviceScalar(n node, s string) (string, error) { return s, checkDevice(n.pos, s) }

// eachScalar calls fn with each item of the list n and its scalar, in
// order; the first error ends it.
func eachScalar(n node, fn func(it node, s string) error) error {
	items, err := n.list()
	if err != nil {
		return err
	}
	for _, it := range items {
		s, err := it.scalar()
		if err != nil {
			return err
		}
		if err := fn(it, s); err != nil {
			return err
		}
	}
	return nil
}

// scalarItems parses each item of the list n (nil for an empty list).
func scalarItems[T any](n node, parse func(it node, s string) (T, error)) ([]T, error) {
	var out []T
	err := eachScalar(n, func(it node, s string) error {
		v, err := parse(it, s)
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
