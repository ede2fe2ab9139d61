// Command routestream is the reference of bench/routes.sh for a full
// apply: the bare stream of RTM_NEWROUTE messages that puts a route list
// into a table, and nothing else. It speaks rtnetlink itself (no tunroute
// package): it reads the list, then sends one message per prefix through
// an existing nexthop object, 1,000 messages per sendmsg, only the last of
// each asking for an ack, and waits for that ack before the next batch.
// The messages are the ones tunroute's apply sends for
// `routes: [{to_file: LIST, via: ..., table: T}]` (table, protocol 116,
// preferred source, nexthop id), in the same shuffled order (the kernel's
// trie builds faster from a shuffled list than from a sorted one).
//
//	routestream -netns NS -list FILE -table 1000 -nhid 1 -src 10.30.0.2
//
// It prints how long the send took (the list read and encoded before);
// bench/routes.sh times the whole process.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	rtaNHID  = 30  // RTA_NH_ID
	protocol = 116 // tunroute's routes
	perSend  = 1000
)

var ne = binary.NativeEndian

func main() {
	nsName := flag.String("netns", "", "network namespace (ip netns name); empty: this one")
	list := flag.String("list", "", "route list: one prefix a line")
	table := flag.Uint("table", 1000, "routing table")
	nhid := flag.Uint("nhid", 1, "nexthop object id (must exist)")
	src := flag.String("src", "", "preferred source address")
	shuffle := flag.Bool("shuffle", true, "send in tunroute's shuffled order")
	flag.Parse()
	if err := run(*nsName, *list, uint32(*table), uint32(*nhid), *src, *shuffle); err != nil {
		fmt.Fprintln(os.Stderr, "routestream:", err)
		os.Exit(1)
	}
}

func run(nsName, list string, table, nhid uint32, src string, shuffle bool) error {
	dsts, err := readList(list)
	if err != nil {
		return err
	}
	var prefsrc netip.Addr
	if src != "" {
		if prefsrc, err = netip.ParseAddr(src); err != nil {
			return err
		}
	}
	order := make([]int32, len(dsts))
	for i := range order {
		order[i] = int32(i)
	}
	if shuffle && len(dsts) >= 4096 {
		// tunroute's permutation (internal/kernel setOrder).
		r := rand.New(rand.NewPCG(uint64(len(dsts)), 0x74756e726f757465))
		for i := len(order) - 1; i > 0; i-- {
			j := r.IntN(i + 1)
			order[i], order[j] = order[j], order[i]
		}
	}
	runtime.LockOSThread()
	if nsName != "" {
		h, err := netns.GetFromName(nsName)
		if err != nil {
			return fmt.Errorf("netns %s: %w", nsName, err)
		}
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("netns %s: %w", nsName, err)
		}
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)

	buf := make([]byte, 0, perSend*64)
	rbuf := make([]byte, 1<<16)
	start := time.Now()
	seq := uint32(1)
	for k := 0; k < len(order); {
		buf = buf[:0]
		n := min(perSend, len(order)-k)
		for i := 0; i < n; i++ {
			flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL)
			if i == n-1 {
				flags |= unix.NLM_F_ACK
			}
			buf = appendRoute(buf, dsts[order[k+i]], table, nhid, prefsrc, flags, seq)
			seq++
		}
		k += n
		if err := unix.Sendto(fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("sendmsg: %w", err)
		}
		if err := waitAck(fd, rbuf, seq-1); err != nil {
			return err
		}
	}
	fmt.Printf("%d routes sent in %.3f s\n", len(dsts), time.Since(start).Seconds())
	return nil
}

// readList reads the list whole and parses it in place (the reference
// should not be slowed by its own input).
func readList(path string) ([]netip.Prefix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, bytes.Count(data, []byte{'\n'})+1)
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		p, err := netip.ParsePrefix(unsafe.String(&line[0], len(line)))
		if err != nil {
			return nil, fmt.Errorf("%s: %q: not a prefix", path, line)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// appendRoute appends one RTM_NEWROUTE: rtmsg, RTA_TABLE, RTA_DST,
// RTA_PREFSRC, RTA_NH_ID (tunroute's attribute order).
func appendRoute(b []byte, dst netip.Prefix, table, nhid uint32, prefsrc netip.Addr, flags uint16, seq uint32) []byte {
	off := len(b)
	b = ne.AppendUint32(b, 0) // length, below
	b = ne.AppendUint16(b, unix.RTM_NEWROUTE)
	b = ne.AppendUint16(b, flags)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0) // port id
	family := byte(unix.AF_INET)
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	compat := byte(unix.RT_TABLE_COMPAT)
	if table < 256 {
		compat = byte(table)
	}
	b = append(b, family, byte(dst.Bits()), 0, 0, compat, protocol, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST)
	b = ne.AppendUint32(b, 0) // rtm_flags
	b = attrU32(b, unix.RTA_TABLE, table)
	if dst.Bits() > 0 {
		b = attrAddr(b, unix.RTA_DST, dst.Addr())
	}
	if prefsrc.IsValid() {
		b = attrAddr(b, unix.RTA_PREFSRC, prefsrc)
	}
	b = attrU32(b, rtaNHID, nhid)
	ne.PutUint32(b[off:], uint32(len(b)-off))
	return b
}

func attrAddr(b []byte, typ uint16, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		b = ne.AppendUint16(b, 4+4)
		b = ne.AppendUint16(b, typ)
		return append(b, v[:]...)
	}
	v := a.As16()
	b = ne.AppendUint16(b, 4+16)
	b = ne.AppendUint16(b, typ)
	return append(b, v[:]...)
}

func attrU32(b []byte, typ uint16, v uint32) []byte {
	b = ne.AppendUint16(b, 8)
	b = ne.AppendUint16(b, typ)
	return ne.AppendUint32(b, v)
}

// waitAck reads replies until the ack of seq; any error reply fails.
func waitAck(fd int, rbuf []byte, seq uint32) error {
	for {
		n, _, err := unix.Recvfrom(fd, rbuf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("recvmsg: %w", err)
		}
		b := rbuf[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(ne.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return errors.New("short netlink message")
			}
			typ := ne.Uint16(b[4:])
			s := ne.Uint32(b[8:])
			if typ == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 {
				if e := int32(ne.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 {
					return fmt.Errorf("message %d: %w", s, unix.Errno(-e))
				}
				if s == seq {
					return nil
				}
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}
