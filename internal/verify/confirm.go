package verify

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/state"
)

// KernelRoute is the kernel's routing answer for the query (the device
// the packet leaves by, "lo" when local, and the source it gets), as
// internal/kernel's RouteGet or `ip route get` give it.
type KernelRoute func(q fib.Query) (KernelAnswer, error)

// KernelAnswer is the kernel's route: the device ("lo" when local), the
// source it chose, and the route type ("unicast", "local", "broadcast",
// "multicast", ...).
type KernelAnswer struct {
	Dev  string
	Src  netip.Addr
	Type string
}

// HasL4Rules reports whether some rule of st selects by ipproto or ports,
// which the kernel's netlink route query of internal/kernel cannot name.
func HasL4Rules(st *state.State) bool {
	for _, r := range st.Rules {
		if r.IPProto != 0 || r.SPort != nil || r.DPort != nil {
			return true
		}
	}
	return false
}

// KernelFate is the packet's fate with the kernel deciding the route and
// tunroute's firewall in st evaluated by internal/nfteval: how a live
// namespace confirms a counterexample.
func KernelFate(p *Packet, st *state.State, tunnels []string, kr KernelRoute) Fate {
	e := &evaluator{st: st}
	e.setTunnels(tunnels)
	e.route = func(q fib.Query, p *Packet) routeAnswer {
		a, err := kr(q)
		if err != nil {
			return routeAnswer{err: err.Error()}
		}
		r := routeAnswer{dev: a.Dev, local: a.Dev == "lo" || a.Type == "local", src: a.Src}
		switch a.Type {
		case "broadcast":
			r.typ = state.RouteBroadcast
		case "multicast":
			r.typ = state.RouteMulticast
		}
		return r
	}
	return e.fate(p)
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
