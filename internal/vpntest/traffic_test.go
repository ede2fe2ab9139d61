package vpntest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
)

// Ports the tests use in inet: the lab's TCP echo (8080), the selector
// ports (22 around the tunnel, 23 through it) and a UDP echo.
const (
	echoPort = lab.EchoPort
	sshPort  = 22
	telPort  = 23
	udpPort  = 9999
)

// attemptTimeout bounds one try to reach inet. A try the kill switch
// blocks fails at once (EPERM); one that vanishes in a dead tunnel waits
// this long.
const attemptTimeout = 400 * time.Millisecond

// udpEcho answers each datagram with "peer=ADDR" (the source it saw).
type udpEcho struct {
	conns []net.PacketConn
	wg    sync.WaitGroup
}

func listenUDPEcho(nsName string, port int) (*udpEcho, error) {
	u := &udpEcho{}
	err := lab.Do(nsName, func() error {
		for _, nw := range []string{"udp4", "udp6"} {
			c, err := net.ListenPacket(nw, fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			u.conns = append(u.conns, c)
		}
		return nil
	})
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("netns %s: udp echo: %w", nsName, err)
	}
	for _, c := range u.conns {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			buf := make([]byte, 1500)
			for {
				_, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				ap := from.(*net.UDPAddr).AddrPort()
				c.WriteTo([]byte("peer="+ap.Addr().Unmap().String()), from)
			}
		}()
	}
	return u, nil
}

func (u *udpEcho) Close() {
	for _, c := range u.conns {
		c.Close()
	}
	u.wg.Wait()
}

// outcome is what one try to reach a destination gave.
type outcome struct {
	what string // "tcp4 203.0.113.2:8080"
	kind string // "tcp", "udp", "icmp"
	v6   bool
	// saw is the source the far end saw (TCP, UDP), or who answered
	// (ICMP); invalid if no answer was asked for.
	saw netip.Addr
	err error
}

func newOutcome(kind string, dst netip.AddrPort) outcome {
	what := kind + fam(dst.Addr()) + " " + dst.String()
	if dst.Port() == 0 {
		what = kind + fam(dst.Addr()) + " " + dst.Addr().String()
	}
	return outcome{what: what, kind: kind, v6: dst.Addr().Is6()}
}

func (o outcome) String() string {
	switch {
	case o.err != nil:
		return fmt.Sprintf("%s: %v", o.what, shortErr(o.err))
	case !o.saw.IsValid():
		return o.what + ": sent"
	case o.kind == "icmp":
		return fmt.Sprintf("%s: answered by %s", o.what, o.saw)
	}
	return fmt.Sprintf("%s: seen from %s", o.what, o.saw)
}

func shortErr(err error) string {
	switch {
	case errors.Is(err, unix.EPERM):
		return "blocked (EPERM)"
	case errors.Is(err, unix.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, unix.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, unix.ETIMEDOUT), isTimeout(err):
		return "timeout"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tcpTry connects from the client to dst's echo server.
func tcpTry(ns string, dst netip.AddrPort) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	o := newOutcome("tcp", dst)
	o.saw, o.err = lab.Probe(ctx, ns, netip.Addr{}, dst)
	return o
}

// udpTry sends one datagram to dst's UDP echo and waits for the answer.
// payload is sent as is (a DNS query needs no answer: the counters see it).
func udpTry(ns string, dst netip.AddrPort, payload []byte, wantAnswer bool) outcome {
	o := newOutcome("udp", dst)
	var c net.Conn
	o.err = lab.Do(ns, func() error {
		var err error
		c, err = net.Dial("udp", dst.String())
		return err
	})
	if o.err != nil {
		return o
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(attemptTimeout))
	if _, o.err = c.Write(payload); o.err != nil || !wantAnswer {
		return o
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		o.err = err
		return o
	}
	s, ok := strings.CutPrefix(string(buf[:n]), "peer=")
	if !ok {
		o.err = fmt.Errorf("bad answer %q", buf[:n])
		return o
	}
	o.saw, o.err = netip.ParseAddr(s)
	return o
}

// icmpTry sends one ICMP(v6) echo request from the client to dst on a raw
// socket opened in the client's namespace and waits for the reply.
func icmpTry(ns string, dst netip.Addr) outcome {
	o := newOutcome("icmp", netip.AddrPortFrom(dst, 0))
	o.saw, o.err = labtest.Ping(ns, dst, attemptTimeout)
	return o
}

func fam(a netip.Addr) string {
	if a.Is6() {
		return "6"
	}
	return "4"
}

// dnsQuery is a DNS query for example.org. A (what a stub resolver sends).
var dnsQuery = []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'o', 'r', 'g', 0, 0, 1, 0, 1}

// inetTargets are inet's addresses.
var inetTargets = []netip.Addr{lab.InetEth4.Addr(), lab.InetEth6.Addr()}

// reachInet tries, all at once, every way to reach inet from the client:
// TCP, UDP and ICMP, IPv4 and IPv6.
func reachInet(ns string) []outcome {
	var tries []func() outcome
	for _, a := range inetTargets {
		tries = append(tries,
			func() outcome { return tcpTry(ns, netip.AddrPortFrom(a, echoPort)) },
			func() outcome { return udpTry(ns, netip.AddrPortFrom(a, udpPort), []byte("tr-vt"), true) },
			func() outcome { return icmpTry(ns, a) },
		)
	}
	return parallel(tries)
}

// queryResolvers sends DNS queries over UDP and TCP to each resolver.
func queryResolvers(ns string, resolvers ...netip.Addr) []outcome {
	var tries []func() outcome
	for _, r := range resolvers {
		tries = append(tries,
			func() outcome { return udpTry(ns, netip.AddrPortFrom(r, 53), dnsQuery, false) },
			func() outcome {
				ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
				defer cancel()
				o := newOutcome("tcp", netip.AddrPortFrom(r, 53))
				var c net.Conn
				o.err = lab.Do(ns, func() error {
					var err error
					c, err = (&net.Dialer{}).DialContext(ctx, "tcp", netip.AddrPortFrom(r, 53).String())
					return err
				})
				if c != nil {
					c.Close()
				}
				return o
			},
		)
	}
	return parallel(tries)
}

func parallel(tries []func() outcome) []outcome {
	out := make([]outcome, len(tries))
	var wg sync.WaitGroup
	for i, f := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = f()
		}()
	}
	wg.Wait()
	return out
}

func outcomes(list []outcome) string {
	var b strings.Builder
	for _, o := range list {
		b.WriteString("\n    " + o.String())
	}
	return b.String()
}
