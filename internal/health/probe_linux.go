package health

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
)

// SocketProbe returns the ProbeFunc that sends real probes from the
// network namespace nsName ("" for the caller's own; else a name under
// /run/netns), or from the probe's own namespace when it is another one
// (an identity of a routing domain). Every probe socket is bound to the identity's device
// (SO_BINDTODEVICE) and source address, and carries its mark (SO_MARK),
// which tunroute's rule sends to the identity's table: a probe can leave
// only through the identity it tests. ICMP uses a raw socket (root or
// CAP_NET_RAW, which tunroute has).
func SocketProbe(nsName string) ProbeFunc {
	return func(ctx context.Context, p *compile.Probe, t config.HealthTarget) (time.Duration, error) {
		nsName := nsName
		if p.Netns != "" {
			nsName = p.Netns
		}
		src := p.Source(t.Addr)
		if !src.IsValid() {
			return 0, fmt.Errorf("identity %s has no IPv%d address", p.Identity, family(t.Addr))
		}
		switch t.Kind {
		case config.ProbeICMP:
			return pingOnce(ctx, nsName, p, src, t.Addr)
		case config.ProbeTCP:
			return tcpConnect(ctx, nsName, p, src, t)
		case config.ProbeDNS:
			return dnsQuery(ctx, nsName, p, src, t)
		}
		return 0, fmt.Errorf("unknown probe kind %q", t.Kind)
	}
}

func family(a netip.Addr) int {
	if a.Is6() {
		return 6
	}
	return 4
}

// inNetns runs f on a thread in the named namespace; sockets f opens stay
// in it for their life. The thread goes back to the namespace it came
// from before it is released; if that fails it is never released (its
// goroutine exits locked and the runtime ends the thread), so no other
// goroutine can run in the namespace by mistake.
func inNetns(nsName string, f func() error) error {
	if nsName == "" {
		return f()
	}
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return fmt.Errorf("netns %s: %w", nsName, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("netns of this thread: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", nsName, err)
			return
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// bindControl binds a socket to the identity's device and marks it.
func bindControl(p *compile.Probe) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, p.Device); serr != nil {
				serr = fmt.Errorf("bind to device %s: %w", p.Device, serr)
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(p.Mark)); serr != nil {
				serr = fmt.Errorf("set mark 0x%x: %w", p.Mark, serr)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Second)
}

// pingOnce sends one echo request and waits for its reply from dst.
func pingOnce(ctx context.Context, nsName string, p *compile.Probe, src, dst netip.Addr) (time.Duration, error) {
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	conn, err := listenProbe(ctx, nsName, p, network, src.String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	id, seq := uint16(rand.Uint32()), uint16(rand.Uint32())
	msg := make([]byte, 16)
	msg[0] = reqType
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
	if !dst.Is6() {
		binary.BigEndian.PutUint16(msg[2:], checksum(msg)) // the kernel sums ICMPv6 itself
	}
	return roundTrip(conn, msg, &net.IPAddr{IP: dst.AsSlice()}, 1500, func(reply []byte, from net.Addr) bool {
		a, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		return ok && a.Unmap() == dst && len(reply) >= 8 && reply[0] == replyType &&
			binary.BigEndian.Uint16(reply[4:]) == id && binary.BigEndian.Uint16(reply[6:]) == seq
	})
}

// listenProbe opens a probe's socket in the namespace, bound by the
// probe's device and mark, with the context's deadline.
func listenProbe(ctx context.Context, nsName string, p *compile.Probe, network, laddr string) (net.PacketConn, error) {
	var conn net.PacketConn
	err := inNetns(nsName, func() error {
		lc := net.ListenConfig{Control: bindControl(p)}
		var err error
		conn, err = lc.ListenPacket(ctx, network, laddr)
		return err
	})
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(deadline(ctx))
	return conn, nil
}

// roundTrip sends msg to `to` and reads, into a buffer of bufSize, until
// isReply takes a packet for the answer; it returns the time between.
func roundTrip(conn net.PacketConn, msg []byte, to net.Addr, bufSize int, isReply func(reply []byte, from net.Addr) bool) (time.Duration, error) {
	start := time.Now()
	if _, err := conn.WriteTo(msg, to); err != nil {
		return 0, err
	}
	buf := make([]byte, bufSize)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		if isReply(buf[:n], from) {
			return time.Since(start), nil
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// tcpConnect opens a TCP connection (the handshake is the probe) and
// closes it.
func tcpConnect(ctx context.Context, nsName string, p *compile.Probe, src netip.Addr, t config.HealthTarget) (time.Duration, error) {
	var rtt time.Duration
	err := inNetns(nsName, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Control: bindControl(p)}
		start := time.Now()
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(t.Addr, t.Port).String())
		if err != nil {
			return err
		}
		rtt = time.Since(start)
		return c.Close()
	})
	return rtt, err
}

// dnsQuery asks the resolver for the root's NS records; any well-formed
// answer with the query's id counts (the path works, whatever the rcode).
func dnsQuery(ctx context.Context, nsName string, p *compile.Probe, src netip.Addr, t config.HealthTarget) (time.Duration, error) {
	conn, err := listenProbe(ctx, nsName, p, "udp", netip.AddrPortFrom(src, 0).String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	id := uint16(rand.Uint32())
	q := []byte{0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1} // RD, 1 question: . NS IN
	binary.BigEndian.PutUint16(q, id)
	to := &net.UDPAddr{IP: t.Addr.AsSlice(), Port: int(t.Port)}
	return roundTrip(conn, q, to, 4096, func(reply []byte, from net.Addr) bool {
		u := from.(*net.UDPAddr)
		a, _ := netip.AddrFromSlice(u.IP)
		return a.Unmap() == t.Addr && u.Port == int(t.Port) && len(reply) >= 12 &&
			binary.BigEndian.Uint16(reply) == id && reply[2]&0x80 != 0
	})
}
