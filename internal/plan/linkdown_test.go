package plan

import (
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// TestOwnedLinkDown: an owned device someone put down is put up in place
// (the undo puts it down again); another program's device, or one the
// config does not want up, is left as it is.
func TestOwnedLinkDown(t *testing.T) {
	veth := func(up, owned bool) state.Link {
		l := state.Link{Name: "trdn0", Kind: "veth", Peer: "trdn0", Up: up}
		if owned {
			l.Alias = state.LinkAliasPrefix + "pipe trdn0"
		}
		return l
	}
	desired := &state.State{Links: []state.Link{veth(true, true)}}
	p, err := Diff(desired, &state.State{Links: []state.Link{veth(false, true)}})
	if err != nil || len(p.Ops) != 1 || p.Ops[0].Action != state.Replace || p.Ops[0].PrevLink.Up || !p.Ops[0].Link.Up {
		t.Fatalf("owned link down: %v %s", err, p.Text())
	}
	if inv := p.Ops[0].Inverse(); inv.Link.Up || !inv.PrevLink.Up {
		t.Fatalf("undo: %+v", inv)
	}
	for _, c := range []struct {
		name     string
		des, obs state.Link
	}{
		{"up already", veth(true, true), veth(true, true)},
		{"not tunroute's", veth(true, true), veth(false, false)},
		{"not wanted up", veth(false, true), veth(false, true)},
	} {
		p, err := Diff(&state.State{Links: []state.Link{c.des}}, &state.State{Links: []state.Link{c.obs}})
		if err != nil || !p.Empty() {
			t.Errorf("%s: %v %s", c.name, err, p.Text())
		}
	}
}
