package domaintest

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
)

// A server answers every TCP connection and every UDP datagram on its
// port, on all addresses of its namespace, with one line "NAME PEER":
// which server answered and where the question came from. TCP is the
// lab's echo server.
type server struct {
	name    string
	tcp     *lab.EchoServer
	fds     []int
	stopped atomic.Bool
	wg      sync.WaitGroup
}

// serve starts a server in a namespace until the test ends.
func (e *env) serve(ns, name string, port int) {
	e.t.Helper()
	s := &server{name: name}
	tcp, err := lab.ListenEchoAs(ns, port, name)
	if err == nil {
		s.tcp = tcp
		err = lab.Do(ns, func() error {
			for _, v6 := range []bool{false, true} {
				fd, err := udpSocket(v6, port)
				if err != nil {
					return err
				}
				s.fds = append(s.fds, fd)
			}
			return nil
		})
	}
	if err != nil {
		s.close()
		e.t.Fatalf("server %s in %s: %v", name, ns, err)
	}
	for _, fd := range s.fds {
		s.wg.Add(1)
		go s.udp(fd)
	}
	e.t.Cleanup(s.close)
}

// udpSocket is a UDP socket bound to the port on all addresses (IPv6:
// only IPv6), with a receive timeout so that its reader can stop.
func udpSocket(v6 bool, port int) (int, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: port}
	if v6 {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if v6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// udp answers datagrams with raw system calls: the peer's address goes
// back exactly as it came (an IPv6 link-local peer keeps its interface
// index; Go's interface names are per process, not per namespace).
func (s *server) udp(fd int) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for !s.stopped.Load() {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		peer := ""
		switch a := from.(type) {
		case *unix.SockaddrInet4:
			peer = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
		case *unix.SockaddrInet6:
			peer = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
		}
		unix.Sendto(fd, fmt.Appendf(nil, "%s %s %s\n", s.name, peer, buf[:n]), 0, from)
	}
}

func (s *server) close() {
	if s.stopped.Swap(true) {
		return
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	s.wg.Wait()
	for _, fd := range s.fds {
		unix.Close(fd)
	}
}

// target is an address to try, with the interface (in the namespace the
// probe runs in) an IPv6 link-local address is reached by.
type target struct {
	Addr netip.Addr
	Zone string
}

func (t target) String() string {
	if t.Zone != "" {
		return t.Addr.String() + "%" + t.Zone
	}
	return t.Addr.String()
}

// zoned resolves the target's zone to an interface index inside the
// namespace (call it in lab.Do).
func (t target) zoned() (netip.Addr, error) { return labtest.ResolveZone(t.Addr.WithZone(t.Zone)) }

// tcpTry connects from a namespace and returns the server's answer line.
func tcpTry(ns string, dst target, port int, timeout time.Duration) (string, error) {
	var c net.Conn
	err := lab.Do(ns, func() error {
		a, err := dst.zoned()
		if err != nil {
			return err
		}
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(a, uint16(port)).String(), timeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// udpTry sends a datagram from a namespace and waits for the answer that
// carries its nonce (from whatever source address: a server bound to all
// addresses may answer from another one).
func udpTry(ns string, dst target, port int, timeout time.Duration) (string, error) {
	var fd int
	var to unix.Sockaddr
	err := lab.Do(ns, func() error {
		a, err := dst.zoned()
		if err != nil {
			return err
		}
		family := unix.AF_INET
		if a.Is6() {
			family = unix.AF_INET6
		}
		if fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		to = labtest.Sockaddr(a, port)
		return nil
	})
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	nonce := make([]byte, 8)
	rand.Read(nonce)
	tag := fmt.Sprintf("%x", nonce)
	if err := unix.Sendto(fd, []byte(tag), 0, to); err != nil {
		return "", err
	}
	return labtest.ReadUntil(fd, timeout, func(b []byte, _ unix.Sockaddr) (string, bool) {
		s := strings.TrimSpace(string(b))
		if strings.HasSuffix(s, " "+tag) {
			return strings.TrimSuffix(s, " "+tag), true
		}
		return "", false
	})
}

// pingTry sends one ICMP echo request from a namespace through a raw
// socket and waits for the matching echo reply.
func pingTry(ns string, dst target, timeout time.Duration) error {
	_, err := labtest.Ping(ns, dst.Addr.WithZone(dst.Zone), timeout)
	return err
}

// try is one attempt to reach a target with one protocol.
type try struct {
	proto  string // tcp, udp, icmp
	dst    target
	answer string
	err    error
}

func (x try) String() string {
	if x.err != nil {
		return fmt.Sprintf("%s %s: %v", x.proto, x.dst, x.err)
	}
	return fmt.Sprintf("%s %s: answered %q", x.proto, x.dst, x.answer)
}

// tryAll tries every target from a namespace with TCP and UDP (to the
// port) and ICMP, all at once, each for at most timeout.
func tryAll(ns string, targets []target, port int, timeout time.Duration) []try {
	var tries []try
	for _, d := range targets {
		for _, p := range []string{"tcp", "udp", "icmp"} {
			tries = append(tries, try{proto: p, dst: d})
		}
	}
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func(x *try) {
			defer wg.Done()
			switch x.proto {
			case "tcp":
				x.answer, x.err = tcpTry(ns, x.dst, port, timeout)
			case "udp":
				x.answer, x.err = udpTry(ns, x.dst, port, timeout)
			case "icmp":
				x.err = pingTry(ns, x.dst, timeout)
			}
		}(&tries[i])
	}
	wg.Wait()
	return tries
}

// reach fails the test unless every protocol reaches every target from
// the namespace (retrying for a few seconds: links and neighbours may
// still be settling).
func reach(t *testing.T, ns string, targets []target, port int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	left := targets
	var failed []try
	for len(left) > 0 {
		failed = failed[:0]
		var again []target
		for _, x := range tryAll(ns, left, port, time.Second) {
			if x.err != nil {
				failed = append(failed, x)
				if len(again) == 0 || again[len(again)-1] != x.dst {
					again = append(again, x.dst)
				}
			}
		}
		left = again
		if len(left) > 0 && time.Now().After(deadline) {
			t.Errorf("from %s, expected to reach:\n%s", ns, tryList(failed))
			return
		}
	}
}

// unreachable fails the test if any protocol reaches any target from the
// namespace.
func unreachable(t *testing.T, ns string, targets []target, port int) {
	t.Helper()
	var leaked []try
	for _, x := range tryAll(ns, targets, port, time.Second) {
		if x.err == nil {
			leaked = append(leaked, x)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("from %s, expected no answer, got:\n%s", ns, tryList(leaked))
	}
}

func tryList(xs []try) string {
	var b strings.Builder
	for _, x := range xs {
		fmt.Fprintf(&b, "  %v\n", x)
	}
	return b.String()
}
