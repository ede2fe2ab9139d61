package plan

import (
	"fmt"

	"github.com/tunroute/tunroute/internal/state"
)

// deviceChange compares a desired device with the link of the same name
// the kernel has, and returns the op that changes its settings in place
// (a tunnel's endpoints, keys or if_id, a WireGuard device's keys and
// peers), or nil when it is as wanted. A link tunroute does not own is
// left alone (listed as kept), except a userspace WireGuard device, which
// its daemon creates and tunroute configures. An owned device of another
// kind cannot be changed in place: its addresses and routes would go with
// it, so the plan refuses.
//
// An owned device the config wants up and someone put down is put up
// again (in place: its addresses and routes stay).
func deviceChange(p *Plan, d, o *state.Link) (*state.Op, error) {
	downed := o.Owned() && d.Up && !o.Up
	if d.Tunnel == nil && d.WireGuard == nil {
		if downed {
			return &state.Op{Action: state.Replace, Link: d, PrevLink: o}, nil
		}
		return nil, nil
	}
	if d.Userspace {
		if o.Kind != "tun" && o.Kind != state.KindWireGuard {
			return nil, fmt.Errorf("cannot configure %s as a WireGuard device: it is a %s device", d.Name, kindWord(o.Kind))
		}
		if d.SameDevice(o) && !downed {
			return nil, nil
		}
		return &state.Op{Action: state.Replace, Link: d, PrevLink: o}, nil
	}
	if !o.Owned() {
		p.Kept = append(p.Kept, "link "+o.Name+" (not tunroute's: its settings are left as they are)")
		return nil, nil
	}
	if o.Kind != d.Kind {
		return nil, fmt.Errorf("link %s is a %s device and the config wants a %s device: take it out of the config and apply (or run down) first, then put it back", d.Name, kindWord(o.Kind), d.Kind)
	}
	if d.SameDevice(o) && !downed {
		return nil, nil
	}
	return &state.Op{Action: state.Replace, Link: d, PrevLink: o}, nil
}

func kindWord(k string) string {
	if k == "" {
		return "plain"
	}
	return k
}
