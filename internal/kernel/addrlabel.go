package kernel

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// dumpAddrLabels lists the IPv6 address label table (`ip addrlabel`).
func (c *conn) dumpAddrLabels(d *devNames) ([]state.AddrLabel, error) {
	var out []state.AddrLabel
	err := retryDump(func() error {
		out = out[:0]
		seq := c.nextSeq()
		c.enc.reset()
		off := c.enc.begin(unix.RTM_GETADDRLABEL, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
		c.enc.zeros(unix.SizeofIfAddrlblmsg)[0] = unix.AF_INET6
		c.enc.end(off)
		return c.dump(seq, func(m message) error {
			if m.typ != unix.RTM_NEWADDRLABEL || len(m.data) < unix.SizeofIfAddrlblmsg {
				return nil
			}
			var l state.AddrLabel
			var addr netip.Addr
			a := attrs{b: m.data[unix.SizeofIfAddrlblmsg:]}
			for a.next() {
				switch a.typ {
				case unix.IFAL_ADDRESS:
					addr = ipAddr(a.val)
				case unix.IFAL_LABEL:
					l.Label = a.u32()
				}
			}
			if !addr.IsValid() {
				return nil
			}
			l.Prefix = netip.PrefixFrom(addr, int(m.data[2]))
			if idx := int(ne.Uint32(m.data[4:])); idx != 0 {
				l.Dev = d.name(idx)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}
