package verify

import (
	"slices"
	"sort"

	"github.com/tunroute/tunroute/internal/nfteval"
)

// The dimensions of the packet space besides the destination address,
// which the destination map handles (it is the one that can hold a
// million prefixes). Each dimension is cut into atoms: maximal sets of
// values that no predicate of the policy tells apart.
const (
	dSrc = iota
	dProto
	dSPort
	dDPort
	dICMP
	dUID
	dMark
	dCgroup
	dIIF
	nDims
)

var dimNames = [nDims]string{"from", "ipproto", "sport", "dport", "icmp type", "uid", "mark", "cgroup", "iif"}

// ivAtoms cuts an ordered dimension into intervals.
type ivAtoms struct {
	starts []u128
	max    u128
}

type ivBuilder struct {
	cuts map[u128]struct{}
	max  u128
}

func newIvBuilder(max u128) *ivBuilder {
	return &ivBuilder{cuts: map[u128]struct{}{{}: {}}, max: max}
}

// add makes [lo, hi] a union of atoms.
func (b *ivBuilder) add(lo, hi u128) {
	b.cuts[lo] = struct{}{}
	if hi.less(b.max) {
		b.cuts[hi.add1()] = struct{}{}
	}
}

func (b *ivBuilder) point(v u128) { b.add(v, v) }

func (b *ivBuilder) build() *ivAtoms {
	a := &ivAtoms{max: b.max}
	for c := range b.cuts {
		a.starts = append(a.starts, c)
	}
	slices.SortFunc(a.starts, func(x, y u128) int { return x.cmp(y) })
	return a
}

func (a *ivAtoms) n() int { return len(a.starts) }

// index is the atom holding v.
func (a *ivAtoms) index(v u128) int {
	i := sort.Search(len(a.starts), func(i int) bool { return v.less(a.starts[i]) })
	return i - 1
}

// last is the last value of atom i.
func (a *ivAtoms) last(i int) u128 {
	if i+1 < len(a.starts) {
		return a.starts[i+1].sub1()
	}
	return a.max
}

// set adds the atoms of [lo, hi] to s (lo and hi+1 must be cuts).
func (a *ivAtoms) set(s bitset, lo, hi u128) {
	for i := a.index(lo); i < len(a.starts) && !hi.less(a.starts[i]); i++ {
		s.set(i)
	}
}

// markAtoms cuts the 32-bit mark space by predicates (mark & mask) ==
// value: an atom is one outcome vector of the predicates.
type markAtoms struct {
	preds []markPred
	byVec map[string]int
	reps  []uint32
}

type markPred struct{ mask, val uint32 }

// tern is a ternary pattern: the bits of care are those of val.
type tern struct{ val, care uint32 }

func newMarkAtoms(preds []markPred) *markAtoms {
	slices.SortFunc(preds, func(a, b markPred) int {
		if a.mask != b.mask {
			return int(int64(a.mask) - int64(b.mask))
		}
		return int(int64(a.val) - int64(b.val))
	})
	preds = slices.Compact(preds)
	m := &markAtoms{preds: preds, byVec: map[string]int{}}
	// Enumerate the realisable outcome vectors by splitting ternary
	// patterns, then give each vector one representative (0 if it is 0's).
	ts := []tern{{}}
	for _, p := range preds {
		var next []tern
		for _, t := range ts {
			free := p.mask &^ t.care
			if (t.val^p.val)&p.mask&t.care != 0 || free == 0 {
				next = append(next, t)
				continue
			}
			cur := t
			for b := uint32(1); b != 0; b <<= 1 {
				if free&b == 0 {
					continue
				}
				next = append(next, tern{val: cur.val&^b | (^p.val & b), care: cur.care | b})
				cur = tern{val: cur.val&^b | (p.val & b), care: cur.care | b}
			}
			next = append(next, cur)
		}
		ts = next
	}
	m.atom(0)
	for _, t := range ts {
		m.atom(t.val)
	}
	return m
}

func (m *markAtoms) vec(v uint32) string {
	b := make([]byte, len(m.preds))
	for i, p := range m.preds {
		if v&p.mask == p.val {
			b[i] = 1
		}
	}
	return string(b)
}

// atom returns v's atom, creating it if v is the first value seen of it.
func (m *markAtoms) atom(v uint32) int {
	k := m.vec(v)
	if i, ok := m.byVec[k]; ok {
		return i
	}
	m.byVec[k] = len(m.reps)
	m.reps = append(m.reps, v)
	return len(m.reps) - 1
}

func (m *markAtoms) n() int { return len(m.reps) }

// matching is the set of atoms where (mark & mask) == val.
func (m *markAtoms) matching(mask, val uint32) bitset {
	s := newBitset(m.n())
	for i, r := range m.reps {
		if r&mask == val {
			s.set(i)
		}
	}
	return s
}

// nameAtoms are discrete values: interface names, cgroup paths.
type nameAtoms struct{ names []string }

func (a *nameAtoms) index(s string) int { return slices.Index(a.names, s) }

// cgroupSet is the set of cgroup atoms a rule's path matches.
func (a *nameAtoms) cgroupSet(path string) bitset {
	s := newBitset(len(a.names))
	for i, n := range a.names {
		if nfteval.CgroupMatches(path, n) {
			s.set(i)
		}
	}
	return s
}
