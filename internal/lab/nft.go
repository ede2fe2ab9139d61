package lab

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nftTable is the table the lab puts into the VPN server's namespace.
const nftTable = "tunroute-lab"

// masquerade installs, in the namespace ns, the equivalent of
//
//	table inet TABLE {
//	  chain postrouting {
//	    type nat hook postrouting priority srcnat;
//	    oifname OUT ip saddr PREFIX masquerade    (one rule per prefix)
//	  }
//	}
//
// so that the VPN clients reach the world with the server's address.
func masquerade(ns netns.NsHandle, table, out string, prefixes ...netip.Prefix) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: table})
	ch := c.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	for _, p := range prefixes {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: masqRule(out, p)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", table, err)
	}
	return nil
}

// Masquerade adds, in the VPN server's namespace, a table of its own
// that masquerades the given tunnel ranges out of its eth0: what another
// VPN run in the lab (by tests) needs beside the lab's WireGuard.
func (l *Lab) Masquerade(table string, prefixes ...netip.Prefix) error {
	h, err := netns.GetFromName(l.NS(VPNServer))
	if err != nil {
		return err
	}
	defer h.Close()
	if err := masquerade(h, table, "eth0", prefixes...); err != nil {
		return fmt.Errorf("netns %s: %w", l.NS(VPNServer), err)
	}
	return nil
}

func masqRule(out string, p netip.Prefix) []expr.Any {
	proto, off, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4) // IPv4 saddr
	if p.Addr().Is6() {
		proto, off, size = unix.NFPROTO_IPV6, 8, 16 // IPv6 saddr
	}
	ifname := make([]byte, unix.IFNAMSIZ)
	copy(ifname, out)
	mask := net.CIDRMask(p.Bits(), int(size)*8)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname},
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
		&expr.Masq{},
	}
}
