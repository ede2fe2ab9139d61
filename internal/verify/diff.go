package verify

import "cmp"

// Change is a class of packets whose fate differs between two states.
type Change struct {
	Family    int    `json:"family"`
	Forwarded bool   `json:"forwarded"`
	Old       string `json:"old"`
	New       string `json:"new"`
	Cells     int    `json:"cells"`
	Example   Packet `json:"-"`
	Packet    string `json:"packet"`
	Where     string `json:"class"`
	Explain   string `json:"explain,omitempty"`
}

// Diff cuts the packet space along both states at once and returns the
// classes whose fate changes from old to new, grouped by the change.
func Diff(old, new Scenario) ([]*Change, int, error) {
	type key struct {
		fam      int
		fwd      bool
		old, new Fate
	}
	byKey := map[key]*Change{}
	cells := 0
	var extra []Match
	for _, sc := range []Scenario{old, new} {
		if sc.Policy != nil {
			extra = append(extra, sc.Policy.Matches()...)
		}
	}
	err := Walk([]Scenario{old, new}, extra, func(c *Cell) {
		cells++
		if c.Fates[0] == c.Fates[1] {
			return
		}
		k := key{c.Family, c.Packet.Forwarded(), c.Fates[0], c.Fates[1]}
		ch := byKey[k]
		if ch == nil {
			ch = &Change{Family: k.fam, Forwarded: k.fwd, Old: k.old.String(), New: k.new.String(), Example: c.Packet,
				Packet: c.Packet.String(), Where: c.Describe()}
			byKey[k] = ch
		} else if better(&c.Packet, &ch.Example) {
			ch.Example, ch.Packet, ch.Where = c.Packet, c.Packet.String(), c.Describe()
		}
		ch.Cells++
	})
	if err != nil {
		return nil, 0, err
	}
	return sortedValues(byKey, func(a, b *Change) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), boolCmp(a.Forwarded, b.Forwarded), cmp.Compare(a.Old, b.Old), cmp.Compare(a.New, b.New))
	}), cells, nil
}
