package kernel

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
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

// RouteGet asks the kernel of the handle's namespace for the route of
// one packet, like `ip route get`, and returns the device it leaves by
// ("lo" for a local destination), or the kernel's error.
func (h *Handle) RouteGet(q RouteQuery) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	nh, err := netlink.NewHandle()
	if h.name != "" {
		nh, err = netlink.NewHandleAt(h.ns)
	}
	if err != nil {
		return "", err
	}
	defer nh.Close()
	opt := &netlink.RouteGetOptions{Iif: q.IIF, UID: q.UID, Mark: q.Mark}
	if q.Src.IsValid() {
		opt.SrcAddr = net.IP(q.Src.AsSlice())
	}
	rs, err := nh.RouteGetWithOptions(net.IP(q.Dst.AsSlice()), opt)
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "", fmt.Errorf("no answer")
	}
	l, err := nh.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}
