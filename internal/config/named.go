package config

import "strings"

// named is an entry of one of the config's lists that other entries refer
// to by name (VPNs, identities, devices, domains, groups, pipes).
type named[E any] interface {
	*E
	entryName() string
}

// byName returns the entry of list called name, or nil.
func byName[P named[E], E any](list []P, name string) P {
	for _, e := range list {
		if e.entryName() == name {
			return e
		}
	}
	return nil
}

// refTo checks that list has an entry called name; its error names the
// kind of entry (kinds is its plural) and lists the entries there are.
func refTo[P named[E], E any](pos Pos, list []P, kind, kinds, name string) error {
	if byName(list, name) != nil {
		return nil
	}
	var names []string
	for _, e := range list {
		names = append(names, e.entryName())
	}
	if len(names) == 0 {
		return pos.Errorf("no %s %q: the config defines no %s", kind, name, kinds)
	}
	return pos.Errorf("no %s %q; defined: %s", kind, name, strings.Join(names, ", "))
}

func (v *VPN) entryName() string      { return v.Name }
func (i *Identity) entryName() string { return i.Name }
func (d *Device) entryName() string   { return d.Name }
func (d *Domain) entryName() string   { return d.Name }
func (g *Group) entryName() string    { return g.Name }
func (p *Pipe) entryName() string     { return p.Name }

// seqOf decodes each item of the sequence v with one, in order, and stops
// at the first error.
func seqOf[T any](v node, one func(node) (T, error)) ([]T, error) {
	items, err := v.seqOnly()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		x, err := one(it)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// appendSeq decodes the sequence v with one onto *dst.
func appendSeq[T any](v node, one func(node) (T, error), dst *[]T) error {
	list, err := seqOf(v, one)
	if err != nil {
		return err
	}
	*dst = append(*dst, list...)
	return nil
}
