package state

// Equal reports whether two routes are the same as far as tunroute
// configures them. Flags the kernel sets on its own (dead, linkdown,
// offload, trap, unresolved), lifetimes and device indexes are ignored;
// so are the nexthops of non-unicast routes, which IPv6 reports as "dev lo".
func (r *Route) Equal(o *Route) bool {
	if r.Key() != o.Key() || r.Type != o.Type || r.Protocol != o.Protocol || r.Scope != o.Scope ||
		r.PrefSrc != o.PrefSrc || r.Flags&NexthopOnlink != o.Flags&NexthopOnlink ||
		r.Pref != o.Pref || r.MTU != o.MTU || r.NHID != o.NHID {
		return false
	}
	if r.Type != RouteUnicast {
		return true
	}
	if len(r.Nexthops) != len(o.Nexthops) {
		return false
	}
	for i := range r.Nexthops {
		a, b := &r.Nexthops[i], &o.Nexthops[i]
		if a.Gateway != b.Gateway || a.Dev != b.Dev || weight(a.Weight) != weight(b.Weight) ||
			a.Flags&NexthopOnlink != b.Flags&NexthopOnlink {
			return false
		}
	}
	return true
}

func weight(w int) int {
	if w == 0 {
		return 1
	}
	return w
}

// addrConfigFlags are the address flags set by whoever adds the address;
// the rest (secondary, tentative, permanent, deprecated...) are the
// kernel's.
const addrConfigFlags = AddrNoDAD | AddrNoPrefixRoute | AddrManageTemp | AddrHomeAddress

// Equal reports whether two addresses are configured the same.
func (a *Addr) Equal(o *Addr) bool {
	return a.Key() == o.Key() && a.Scope == o.Scope && a.Flags&addrConfigFlags == o.Flags&addrConfigFlags &&
		a.Broadcast == o.Broadcast && a.Proto == o.Proto
}
