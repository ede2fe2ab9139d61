package verify

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/nfteval"
	"github.com/tunroute/tunroute/internal/testns"
)

// shaped is a packet sent with the header fields a raw socket or a
// socket option forges: IPv4 options, an IPv6 hop limit.
type shaped struct {
	name     string
	src, dst netip.Addr
	proto    uint8 // 17 (UDP to port 9) or 58 (ICMPv6 of type icmp)
	icmp     uint8
	options  []byte // IP_OPTIONS
	rthdr    []byte // IPV6_RTHDR
	hops     int    // IPV6_UNICAST_HOPS / IPV6_MULTICAST_HOPS; 0: the default
}

// TestKernelShape (root) applies a kill switch to a namespace like the
// lab client and sends packets with forged header fields for real: the
// kernel's verdict (the send fails with EPERM when nftables drops it)
// must be nfteval's for the same packet, field by field. This is the
// oracle for the matches check's packet space does not vary (options,
// hop limit) and for a source on the output device.
func TestKernelShape(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ns := fmt.Sprintf("tr-ck-shape-%d", os.Getpid())
	labNamespace(t, ns, false)
	testns.Cmd(t, "ip", "-n", ns, "-6", "addr", "add", "fe80::2/64", "dev", "eth0", "nodad")
	obs := observeNS(t, ns)
	cfg, err := config.Parse([]byte("killswitch:\n  allow:\n    - to: 10.1.0.0/24\n    - to: 2001:db8:1::/64\n      proto: udp\n"),
		"test.yaml", config.Options{TableNames: testTables})
	if err != nil {
		t.Fatal(err)
	}
	res, err := compile.Compile(cfg, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	applyDesired(t, ns, res.State)
	st := observeNS(t, ns)
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a := netip.MustParseAddr
	rr := []byte{7, 7, 4, 0, 0, 0, 0, 1} // record route, one slot, then a NOP
	for _, c := range []shaped{
		{name: "UDP to the LAN", src: a("10.1.0.2"), dst: a("10.1.0.1"), proto: 17},
		{name: "UDP to the LAN with record route", src: a("10.1.0.2"), dst: a("10.1.0.1"), proto: 17, options: rr},
		{name: "UDP to the LAN with a loose source route", src: a("10.1.0.2"), dst: a("10.1.0.1"), proto: 17,
			options: []byte{131, 7, 4, 10, 1, 0, 1, 1}},
		{name: "UDP to the IPv6 LAN", src: a("2001:db8:1::2"), dst: a("2001:db8:1::1"), proto: 17},
		{name: "UDP to the IPv6 LAN with a segment routing header", src: a("2001:db8:1::2"), dst: a("2001:db8:1::1"), proto: 17,
			rthdr: srh(a("2001:db8:1::1"))},
		{name: "NS from the device's address, hop limit 255", src: a("2001:db8:1::2"), dst: a("2001:db8:1::1"), proto: 58, icmp: 135, hops: 255},
		{name: "NS from the device's address, hop limit 64", src: a("2001:db8:1::2"), dst: a("2001:db8:1::1"), proto: 58, icmp: 135, hops: 64},
		{name: "NS from wg0's address out of eth0", src: a("2001:db8:30::2"), dst: a("2001:db8:1::1"), proto: 58, icmp: 135, hops: 255},
		{name: "NS from the link-local address", src: a("fe80::2"), dst: a("fe80::1"), proto: 58, icmp: 135, hops: 255},
		{name: "NS to an Internet address", src: a("2001:db8:1::2"), dst: a("2001:db8:99::1"), proto: 58, icmp: 135, hops: 255},
		{name: "MLD report, hop limit 1", src: a("fe80::2"), dst: a("ff02::16"), proto: 58, icmp: 143, hops: 1},
		{name: "MLD report, hop limit 2", src: a("fe80::2"), dst: a("ff02::16"), proto: 58, icmp: 143, hops: 2},
	} {
		kernelDrop, err := sendShaped(h, c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		p := nfteval.Packet{Family: 4, OIF: "eth0", Src: c.src, Dst: c.dst, Proto: c.proto, DPort: 9, SPort: 40000,
			ICMPType: c.icmp, Socket: true, IPOptions: len(c.options) > 0, RoutingHeader: len(c.rthdr) > 0, SrcOnOIF: srcOnDev(st, "eth0", c.src)}
		if c.dst.Is6() {
			p.Family = 6
			p.HopLimit = uint8(c.hops)
			if c.hops == 0 {
				p.HopLimit = 64
			}
		}
		if c.proto != 17 {
			p.SPort, p.DPort = 0, 0
		}
		v := nfteval.Hook(st.Firewall, "output", p)
		if !v.Drop {
			v = nfteval.Hook(st.Firewall, "postrouting", p)
		}
		if v.Drop != kernelDrop {
			t.Errorf("%s: nfteval says drop %v (%s), the kernel %v", c.name, v.Drop, v.Reason(), kernelDrop)
			continue
		}
		why := v.Reason()
		if !v.Drop && len(v.Accepted) > 0 {
			why = v.Accepted[len(v.Accepted)-1].Rule.Comment
		}
		t.Logf("%s: drop %v (%s), as the kernel", c.name, v.Drop, why)
	}
}

// sendShaped sends c from inside ns by eth0; drop is whether nftables
// dropped it (EPERM).
func sendShaped(ns netns.NsHandle, c shaped) (drop bool, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return false, err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return false, err
	}
	defer netns.Set(orig)
	eth0, err := net.InterfaceByName("eth0")
	if err != nil {
		return false, err
	}
	fam, typ, proto := syscall.AF_INET, syscall.SOCK_DGRAM, 0
	if c.dst.Is6() {
		fam = syscall.AF_INET6
	}
	payload := []byte("tunroute check")
	port := 9
	if c.proto == 58 {
		typ, proto, port = syscall.SOCK_RAW, syscall.IPPROTO_ICMPV6, 0
		payload = make([]byte, 24) // type, code, checksum (the kernel's), reserved, target
		payload[0] = c.icmp
		copy(payload[8:], c.dst.AsSlice())
	}
	fd, err := syscall.Socket(fam, typ, proto)
	if err != nil {
		return false, err
	}
	defer syscall.Close(fd)
	if len(c.options) > 0 {
		if err := syscall.SetsockoptString(fd, syscall.IPPROTO_IP, syscall.IP_OPTIONS, string(c.options)); err != nil {
			return false, fmt.Errorf("IP_OPTIONS: %w", err)
		}
	}
	if len(c.rthdr) > 0 {
		if err := syscall.SetsockoptString(fd, syscall.IPPROTO_IPV6, syscall.IPV6_RTHDR, string(c.rthdr)); err != nil {
			return false, fmt.Errorf("IPV6_RTHDR: %w", err)
		}
	}
	if c.hops != 0 {
		opt := syscall.IPV6_UNICAST_HOPS
		if c.dst.IsMulticast() {
			opt = syscall.IPV6_MULTICAST_HOPS
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, opt, c.hops); err != nil {
			return false, fmt.Errorf("hop limit: %w", err)
		}
	}
	if err := syscall.BindToDevice(fd, "eth0"); err != nil {
		return false, err
	}
	if err := syscall.Bind(fd, shapedAddr(c.src, 0, eth0.Index)); err != nil {
		return false, fmt.Errorf("bind %s: %w", c.src, err)
	}
	err = syscall.Sendto(fd, payload, 0, shapedAddr(c.dst, port, eth0.Index))
	if errors.Is(err, syscall.EPERM) {
		return true, nil
	}
	return false, err
}

func shapedAddr(a netip.Addr, port, index int) syscall.Sockaddr {
	if a.Is4() {
		return &syscall.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	sa := &syscall.SockaddrInet6{Addr: a.As16(), Port: port}
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		sa.ZoneId = uint32(index)
	}
	return sa
}

// srh is a segment routing header (type 4) whose one segment is the
// destination itself: segments left 0, so the packet still goes to dst,
// carrying a routing header.
func srh(dst netip.Addr) []byte {
	b := []byte{0, 2, 4, 0, 0, 0, 0, 0} // next header (the kernel's), length, type 4, segments left, last entry, flags, tag
	return append(b, dst.AsSlice()...)
}
