package verify

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/state"
)

// KernelRoute is the kernel's routing answer for one packet (the device
// it leaves by, "lo" when local, and the source it gets), as
// internal/kernel's RouteGet gives it.
type KernelRoute func(dst, src netip.Addr, iif string, uid *uint32, mark uint32) (dev string, psrc netip.Addr, err error)

// KernelFate is the packet's fate with the kernel deciding the route and
// tunroute's firewall in st evaluated by internal/nfteval: how a live
// namespace confirms a counterexample. The kernel's route query takes
// no protocol or ports: a state whose rules select by them cannot be
// confirmed this way (ok is false).
func KernelFate(p *Packet, st *state.State, tunnels []string, kr KernelRoute) (f Fate, ok bool) {
	e := &evaluator{st: st}
	e.setTunnels(tunnels)
	for _, r := range st.Rules {
		if r.IPProto != 0 || r.SPort != nil || r.DPort != nil {
			return Fate{}, false
		}
	}
	e.route = func(q fib.Query, p *Packet) routeAnswer {
		var uid *uint32
		if q.HasUID {
			u := q.UID
			uid = &u
		}
		dev, src, err := kr(q.To, q.From, q.IIF, uid, q.Mark)
		if err != nil {
			return routeAnswer{err: err.Error()}
		}
		return routeAnswer{dev: dev, local: dev == "lo", src: src}
	}
	return e.fate(p), true
}

// Agree reports whether two fates are the same up to the wording of
// errors (the kernel's errno text differs from ip's).
func Agree(a, b Fate) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case Out, Local:
		return a.Dev == b.Dev
	case Dropped:
		return a.Reason == b.Reason
	}
	return true
}
