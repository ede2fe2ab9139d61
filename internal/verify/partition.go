package verify

import (
	"cmp"
	"maps"
	"slices"
)

// Class is the set of packets with one fate in one scenario, of one
// family and kind of traffic.
type Class struct {
	Family    int    `json:"family"`
	Forwarded bool   `json:"forwarded"`
	Fate      string `json:"fate"`
	fate      Fate
	// Cells is how many cells (atoms of the policy) make the class.
	Cells int `json:"cells"`
	// Example is one packet of the class, and Where the cell it is from.
	Example Packet `json:"-"`
	Explain string `json:"explain"`
	Where   string `json:"where"`
}

// FateOf is the class's fate.
func (c *Class) FateOf() Fate { return c.fate }

// Partition computes the classes of scenario sc: every packet of both
// families, sent by this host or forwarded, falls in exactly one.
func Partition(sc Scenario) ([]*Class, int, error) {
	type key struct {
		fam int
		fwd bool
		f   Fate
	}
	byKey := map[key]*Class{}
	cells := 0
	err := Walk([]Scenario{sc}, nil, func(c *Cell) {
		cells++
		k := key{c.Family, c.Packet.Forwarded(), c.Fates[0]}
		cl := byKey[k]
		if cl == nil {
			cl = &Class{Family: k.fam, Forwarded: k.fwd, Fate: k.f.String(), fate: k.f, Example: c.Packet,
				Where: c.Describe()}
			byKey[k] = cl
		} else if better(&c.Packet, &cl.Example) {
			cl.Example, cl.Where = c.Packet, c.Describe()
		}
		cl.Cells++
	})
	if err != nil {
		return nil, 0, err
	}
	return sortedValues(byKey, func(a, b *Class) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), boolCmp(a.Forwarded, b.Forwarded), cmp.Compare(a.Fate, b.Fate))
	}), cells, nil
}

// sortedValues returns the values of m sorted by cmp (an empty slice, not
// nil, for an empty m).
func sortedValues[K comparable, V any](m map[K]V, cmp func(a, b V) int) []V {
	out := slices.AppendSeq(make([]V, 0, len(m)), maps.Values(m))
	slices.SortFunc(out, cmp)
	return out
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// better prefers examples that are easy to try: ICMP echo, then UDP, then
// TCP, from an unbound socket, without a mark, uid or cgroup.
func better(a, b *Packet) bool {
	return score(a) < score(b)
}

func score(p *Packet) int {
	s := 0
	switch {
	case p.Proto == 1 && p.ICMPType == 8 || p.Proto == 58 && p.ICMPType == 128:
	case p.Proto == 17:
		s += 10
	case p.Proto == 6:
		s += 20
	default:
		s += 40
	}
	if p.Src.IsValid() && !p.Forwarded() {
		s += 3
	}
	for _, sp := range specials(p.Family) {
		if sp.Contains(p.Dst) || p.Forwarded() && p.Src.IsValid() && sp.Contains(p.Src) {
			s += 50
			break
		}
	}
	if p.Mark != 0 {
		s += 5
	}
	if p.Cgroup != "" {
		s += 2
	}
	if p.UID != 1000 && p.UID != 0 {
		s++
	}
	return s
}
