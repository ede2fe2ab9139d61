package kernel

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ForgetConnections deletes, in the named namespace ("" for the caller's),
// the connection tracking entries whose replies go to one of addrs: the
// connections from an identity's address, and those masqueraded to it.
// After a failover away from that identity they would keep their old
// source (NAT mapping) on the new path, where it is dropped; forgotten,
// their next packet is a new connection, masqueraded to the new path's
// address, and the applications' connections re-establish. It returns how
// many entries were deleted.
func ForgetConnections(nsName string, addrs []netip.Addr) (uint, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	ns, err := openNamespace(nsName)
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	var h *netlink.Handle
	err = inNetns(ns, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("conntrack in %s: %w", nsWord(nsName), err)
	}
	defer h.Close()
	var total uint
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		var filters []netlink.CustomConntrackFilter
		for _, a := range addrs {
			if a.Is6() != (fam == unix.AF_INET6) {
				continue
			}
			f := &netlink.ConntrackFilter{}
			if err := f.AddIP(netlink.ConntrackReplyDstIP, a.AsSlice()); err != nil {
				return total, err
			}
			filters = append(filters, f)
		}
		if len(filters) == 0 {
			continue
		}
		n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, filters...)
		total += n
		if err != nil {
			return total, fmt.Errorf("conntrack in %s: %w", nsWord(nsName), err)
		}
	}
	return total, nil
}
