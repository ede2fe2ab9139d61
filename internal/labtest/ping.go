package labtest

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/lab"
)

// ErrNoAnswer is what a probe returns when nothing answered in time; it
// is a timeout (errors.Is(err, os.ErrDeadlineExceeded)).
var ErrNoAnswer = fmt.Errorf("no answer (timeout): %w", os.ErrDeadlineExceeded)

// Ping sends one ICMP (or ICMPv6) echo request from the named namespace
// to dst through a raw socket opened there, and waits up to timeout for
// its reply; it returns who answered. A zone of dst (an IPv6 link-local
// address) is an interface name in that namespace.
func Ping(ns string, dst netip.Addr, timeout time.Duration) (netip.Addr, error) {
	var fd int
	var to unix.Sockaddr
	v6 := dst.Is6() && !dst.Is4In6()
	err := lab.Do(ns, func() error {
		a, err := ResolveZone(dst)
		if err != nil {
			return err
		}
		family, proto := unix.AF_INET, unix.IPPROTO_ICMP
		if v6 {
			family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
		}
		if fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		to = Sockaddr(a, 0)
		return nil
	})
	if err != nil {
		return netip.Addr{}, err
	}
	defer unix.Close(fd)
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	payload := make([]byte, 16)
	rand.Read(payload)
	msg := []byte{8, 0, 0, 0, idb[0], idb[1], 0, 1}
	reply := byte(0)
	if v6 {
		msg[0], reply = 128, 129 // the kernel fills in the ICMPv6 checksum
	}
	msg = append(msg, payload...)
	if !v6 {
		binary.BigEndian.PutUint16(msg[2:], Checksum(msg))
	}
	if err := unix.Sendto(fd, msg, 0, to); err != nil {
		return netip.Addr{}, err
	}
	var who netip.Addr
	_, err = ReadUntil(fd, timeout, func(b []byte, from unix.Sockaddr) (string, bool) {
		if !v6 {
			// An IPv4 raw socket gets the IP header too.
			if len(b) < 20 {
				return "", false
			}
			b = b[int(b[0]&0x0f)*4:]
		}
		if len(b) < 8+len(payload) || b[0] != reply || binary.BigEndian.Uint16(b[4:]) != id ||
			string(b[8:8+len(payload)]) != string(payload) {
			return "", false
		}
		// An echo reply carries the address it was sent to, not what
		// the far end saw: report who answered.
		who = sockaddrAddr(from)
		return "", true
	})
	return who, err
}

// ResolveZone turns the zone of a (an interface name) into that
// interface's index in the namespace the calling thread is in (call it
// in lab.Do).
func ResolveZone(a netip.Addr) (netip.Addr, error) {
	if a.Zone() == "" {
		return a, nil
	}
	if _, err := strconv.Atoi(a.Zone()); err == nil {
		return a, nil
	}
	ifi, err := net.InterfaceByName(a.Zone())
	if err != nil {
		return netip.Addr{}, err
	}
	return a.WithZone(strconv.Itoa(ifi.Index)), nil
}

// Sockaddr is the socket address of a and port (a's zone, if any, an
// interface index).
func Sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	sa := &unix.SockaddrInet6{Addr: a.As16(), Port: port}
	if z, err := strconv.Atoi(a.Zone()); err == nil {
		sa.ZoneId = uint32(z)
	}
	return sa
}

func sockaddrAddr(sa unix.Sockaddr) netip.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

// ReadUntil reads datagrams from fd until match accepts one (and says
// what it found) or the time is up (ErrNoAnswer).
func ReadUntil(fd int, timeout time.Duration, match func(b []byte, from unix.Sockaddr) (string, bool)) (string, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return "", ErrNoAnswer
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return "", err
		}
		if s, ok := match(buf[:n], from); ok {
			return s, nil
		}
	}
}

// Checksum is the Internet checksum (RFC 1071) of b.
func Checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
