package kernel

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/tunroute/tunroute/internal/state"
)

// RouteQuery is what `tunroute check` asks the kernel to confirm a
// counterexample: the words of `ip route get` the kernel's RTM_GETROUTE
// takes from netlink's options (no ipproto or ports).
type RouteQuery struct {
	Dst, Src netip.Addr // Src invalid: none
	IIF      string
	UID      *uint32
	Mark     uint32
}

// RouteAnswer is the kernel's route for one packet.
type RouteAnswer struct {
	Dev string // "lo" for a local destination
	Src netip.Addr
	// Type is the route type: "unicast", "local", "broadcast", "multicast", ...
	Type string
}

// RouteGet asks the kernel of the handle's namespace for the route of
// one packet, like `ip route get`, or returns the kernel's error.
func (h *Handle) RouteGet(q RouteQuery) (RouteAnswer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	nh, err := netlink.NewHandle()
	if h.name != "" {
		nh, err = netlink.NewHandleAt(h.ns)
	}
	if err != nil {
		return RouteAnswer{}, err
	}
	defer nh.Close()
	opt := &netlink.RouteGetOptions{Iif: q.IIF, UID: q.UID, Mark: q.Mark}
	if q.Src.IsValid() {
		opt.SrcAddr = net.IP(q.Src.AsSlice())
	}
	rs, err := nh.RouteGetWithOptions(net.IP(q.Dst.AsSlice()), opt)
	if err != nil {
		return RouteAnswer{}, err
	}
	if len(rs) == 0 {
		return RouteAnswer{}, fmt.Errorf("no answer")
	}
	l, err := nh.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return RouteAnswer{}, err
	}
	a := RouteAnswer{Dev: l.Attrs().Name, Type: state.RouteType(rs[0].Type).String()}
	if src, ok := netip.AddrFromSlice(rs[0].Src); ok {
		a.Src = src.Unmap()
	}
	return a, nil
}
