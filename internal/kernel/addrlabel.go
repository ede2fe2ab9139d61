package kernel

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// dumpAddrLabels lists the IPv6 address label table (`ip addrlabel`).
func (c *conn) dumpAddrLabels(d *devNames) ([]state.AddrLabel, error) {
	return dumpAll(c, unix.RTM_GETADDRLABEL, unix.RTM_NEWADDRLABEL, unix.SizeofIfAddrlblmsg, unix.AF_INET6, nil, func(data []byte) (state.AddrLabel, bool) {
		return decodeAddrLabel(data, d)
	})
}

// decodeAddrLabel decodes one RTM_NEWADDRLABEL.
func decodeAddrLabel(data []byte, d *devNames) (state.AddrLabel, bool) {
	var l state.AddrLabel
	if len(data) < unix.SizeofIfAddrlblmsg {
		return l, false
	}
	var addr netip.Addr
	a := attrs{b: data[unix.SizeofIfAddrlblmsg:]}
	for a.next() {
		switch a.typ {
		case unix.IFAL_ADDRESS:
			addr = ipAddr(a.val)
		case unix.IFAL_LABEL:
			l.Label = a.u32()
		}
	}
	if !addr.IsValid() {
		return l, false
	}
	l.Prefix = netip.PrefixFrom(addr, int(data[2]))
	if idx := int(ne.Uint32(data[4:])); idx != 0 {
		l.Dev = d.name(idx)
	}
	return l, true
}
