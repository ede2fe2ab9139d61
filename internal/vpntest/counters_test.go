package vpntest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The test's own nftables tables in the isp namespace: one that counts
// what arrives from the client, one that cuts the client off the VPN
// server. They are the test's instruments, not tunroute's.
const (
	countTable = "tr-vt-count"
	blockTable = "tr-vt-block"
)

// transport is a packet pattern of the VPN's own encapsulated traffic:
// to the server's real address, with this protocol and port.
type transport struct {
	proto uint8 // unix.IPPROTO_UDP or IPPROTO_TCP
	port  uint16
}

// Counter names. The categories on c0 ingress (packets from the client's
// uplink) are exclusive, tried in this order:
//
//	transport4/6  the VPN's encapsulated traffic to the server
//	server4/6     anything else to the server's real address (allowed in
//	              clear by the policy, e.g. an ICMP error to it)
//	options4      IPv4 with options (a source route: a leak whatever the
//	              destination, since a router may follow the route)
//	rh6           IPv6 with a routing header (the same)
//	nd6           IPv6 neighbour discovery and MLD to a link-local,
//	              multicast or on-link address (link-local plumbing)
//	selected4/6   TCP to port 22, which the config sends around the tunnel
//	clear4/6      everything else: a leak
//
// and, on any isp interface, DNS to the ISP's resolver (dns4/dns6), which
// must never arrive, in clear or through the tunnel.
const (
	cTransport4 = "transport4"
	cTransport6 = "transport6"
	cServer4    = "server4"
	cServer6    = "server6"
	cND6        = "nd6"
	cOptions4   = "options4"
	cRH6        = "rh6"
	cSelected4  = "selected4"
	cSelected6  = "selected6"
	cClear4     = "clear4"
	cClear6     = "clear6"
	cDNS4       = "dns4"
	cDNS6       = "dns6"
)

// counts are counter values by name.
type counts map[string]uint64

func (c counts) sub(o counts) counts {
	d := counts{}
	for k, v := range c {
		d[k] = v - o[k]
	}
	return d
}

func (c counts) String() string {
	var keys []string
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, c[k])
	}
	return strings.TrimSpace(b.String())
}

// counters is the counting table in the isp namespace.
type counters struct {
	ns     string
	server [2]netip.Addr // the VPN server's real addresses, v4 and v6
}

func nftIn(nsName string) (*nftables.Conn, func(), error) {
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, nil, err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return c, func() { h.Close() }, nil
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// match builders: each leaves its result compared in register 1.
func mIIF(dev string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(dev)}}
}

func mOIF(dev string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(dev)}}
}

func mFamily(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
}

// mAddr matches the destination (or source) address, after the family.
func mAddr(a netip.Addr, src bool) []expr.Any {
	off, n := uint32(16), uint32(4)
	if src {
		off = 12
	}
	if a.Is6() {
		off, n = 24, 16
		if src {
			off = 8
		}
	}
	out := mFamily(a.Is6())
	return append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()})
}

// mPrefix matches the destination address against a prefix, after the
// family.
func mPrefix(p netip.Prefix) []expr.Any {
	off, n := uint32(16), uint32(4)
	if p.Addr().Is6() {
		off, n = 24, 16
	}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	out := mFamily(p.Addr().Is6())
	return append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()})
}

// mIPOptions matches IPv4 packets whose header is longer than 20 bytes.
func mIPOptions() []expr.Any {
	return append(mFamily(false), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x0f}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{5}})
}

// mRoutingHeader matches IPv6 packets with a routing header.
func mRoutingHeader() []expr.Any {
	return append(mFamily(true), &expr.Exthdr{DestRegister: 1, Type: unix.IPPROTO_ROUTING, Offset: 0, Len: 1,
		Flags: unix.NFT_EXTHDR_F_PRESENT, Op: expr.ExthdrOpIpv6},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1}})
}

// linkPrefixes6 are the destinations neighbour discovery and MLD have on
// the client's link: link-local, multicast, the LAN's prefix.
var linkPrefixes6 = []netip.Prefix{netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("2001:db8:1::/64")}

func mProto(p uint8) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
}

func mDPort(port uint16) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(port)}}
}

func mICMPv6Range(lo, hi byte) []expr.Any {
	return append(mProto(unix.IPPROTO_ICMPV6),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{lo}, ToData: []byte{hi}})
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	counted = []expr.Any{&expr.Counter{}}
	ret     = []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
	drop    = []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
)

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

// newCounters installs the counting table in ispNS: a prerouting chain
// (before conntrack and NAT) that sorts every IP packet arriving on c0
// (the client's uplink) into the categories above, and counts DNS to
// the resolvers on any interface.
func newCounters(ispNS string, server [2]netip.Addr, tr []transport, resolvers [2]netip.Addr) (*counters, error) {
	c, done, err := nftIn(ispNS)
	if err != nil {
		return nil, err
	}
	defer done()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: countTable})
	prio := nftables.ChainPriority(-400)
	ch := c.AddChain(&nftables.Chain{Name: "count", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: &prio})
	add := func(name string, e []expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e, UserData: comment(name)})
	}
	for i, r := range resolvers {
		name := []string{cDNS4, cDNS6}[i]
		for _, p := range []uint8{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			add(name, cat(mAddr(r, false), mProto(p), mDPort(53), counted))
		}
	}
	c0 := mIIF("c0")
	for i, s := range server {
		tname, sname := []string{cTransport4, cTransport6}[i], []string{cServer4, cServer6}[i]
		for _, x := range tr {
			add(tname, cat(c0, mAddr(s, false), mProto(x.proto), mDPort(x.port), counted, ret))
		}
		add(sname, cat(c0, mAddr(s, false), counted, ret))
	}
	add(cOptions4, cat(c0, mIPOptions(), counted, ret))
	add(cRH6, cat(c0, mRoutingHeader(), counted, ret))
	for _, p := range linkPrefixes6 {
		add(cND6, cat(c0, mPrefix(p), mICMPv6Range(130, 137), counted, ret))
		add(cND6, cat(c0, mPrefix(p), mICMPv6Range(143, 143), counted, ret))
	}
	add(cSelected4, cat(c0, mFamily(false), mProto(unix.IPPROTO_TCP), mDPort(22), counted, ret))
	add(cSelected6, cat(c0, mFamily(true), mProto(unix.IPPROTO_TCP), mDPort(22), counted, ret))
	add(cClear4, cat(c0, mFamily(false), counted))
	add(cClear6, cat(c0, mFamily(true), counted))
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("netns %s: counting table: %w", ispNS, err)
	}
	return &counters{ns: ispNS, server: server}, nil
}

// read returns the counters' packet counts, summed by name.
func (k *counters) read() (counts, error) {
	c, done, err := nftIn(k.ns)
	if err != nil {
		return nil, err
	}
	defer done()
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: countTable}
	rules, err := c.GetRules(t, &nftables.Chain{Name: "count", Table: t})
	if err != nil {
		return nil, fmt.Errorf("netns %s: read counters: %w", k.ns, err)
	}
	out := counts{}
	for _, r := range rules {
		name, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				out[name] += ctr.Packets
			}
		}
	}
	return out, nil
}

// block cuts the client off the VPN server: the isp drops whatever the
// client sends to the server's addresses, and the reverse.
func (k *counters) block() error {
	c, done, err := nftIn(k.ns)
	if err != nil {
		return err
	}
	defer done()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: blockTable})
	prio := nftables.ChainPriority(0)
	ch := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: &prio})
	for _, s := range k.server {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(mIIF("c0"), mAddr(s, false), drop)})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(mOIF("c0"), mAddr(s, true), drop)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netns %s: block table: %w", k.ns, err)
	}
	return nil
}

// unblock removes the block table.
func (k *counters) unblock() error {
	c, done, err := nftIn(k.ns)
	if err != nil {
		return err
	}
	defer done()
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: blockTable})
	return c.Flush()
}
