package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/state"
)

// WatchKind is what a kernel event is about.
type WatchKind string

const (
	WatchLink     WatchKind = "link"
	WatchAddr     WatchKind = "address"
	WatchRoute    WatchKind = "route"
	WatchRule     WatchKind = "rule"
	WatchNexthop  WatchKind = "nexthop"
	WatchFirewall WatchKind = "firewall"
	// WatchLost: the kernel dropped events (ENOBUFS); everything must be
	// read again.
	WatchLost WatchKind = "lost"
)

// WatchEvent is one change the kernel reported in a namespace.
type WatchEvent struct {
	Netns   string
	Kind    WatchKind
	Deleted bool
	// At is when the event was read.
	At time.Time
	// Protocol is a route's, rule's or nexthop's protocol (who made it).
	Protocol state.Protocol
	// Table and Dst: a route's table and destination (Dst also for a rule
	// with a destination); Family is AF_INET or AF_INET6.
	Table  uint32
	Dst    netip.Prefix
	Family uint8
	// Priority is a rule's preference.
	Priority uint32
	// FirewallTable is the nftables table an nftables event is about.
	FirewallTable string
	// cloned: a route cache entry (an exception), not a route.
	cloned bool
	// raw is the message of a route of tunroute's, and replace its
	// NLM_F_REPLACE: a RouteCache applies such a change instead of
	// forgetting what it holds.
	raw     []byte
	replace bool
}

// watchRecvBuffer is the socket receive buffer: large, so that a burst
// (a routing daemon loading a full table) is not lost; when it still
// overflows the kernel says ENOBUFS and the caller reads everything
// again.
var watchRecvBuffer = 32 << 20 // a variable for the test of lost events

// Netlink multicast groups (linux/rtnetlink.h, linux/netfilter/nfnetlink.h).
const (
	rtnlgrpLink       = 1
	rtnlgrpIPv4Ifaddr = 5
	rtnlgrpIPv4Route  = 7
	rtnlgrpIPv4Rule   = 8
	rtnlgrpIPv6Ifaddr = 9
	rtnlgrpIPv6Route  = 11
	rtnlgrpIPv6Rule   = 19
	rtnlgrpNexthop    = 32
	nfnlgrpNftables   = 7

	nfnlSubsysNftables = 10
	rtmNewNexthop      = 104
	rtmDelNexthop      = 105
	fraProtocol        = 21
	fraDst             = 1
	fraPriority        = 6
	nftaTableName      = 1 // NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,SET_ELEM_LIST_TABLE}
	nftMsgNewGen       = 15
	nftMsgDelTable     = 2
	nftMsgDelChain     = 5
	nftMsgDelRule      = 8
	nftMsgDelSet       = 11
	nftMsgDelSetElem   = 14
)

// Watcher reports the kernel's routing and nftables events of one
// namespace: links, addresses, IPv4 and IPv6 routes and rules, nexthops,
// nftables tables, chains, rules and sets.
type Watcher struct {
	netns string
	files []*os.File
	fds   []int
	done  chan struct{}
	wg    sync.WaitGroup
	// mu is held by a reader from taking a datagram off its socket until
	// the cache has been told of its events: Synced takes it to know
	// that nothing the kernel sent is on its way.
	mu     sync.Mutex
	cache  *RouteCache
	closed bool
}

// Synced reports whether every event the kernel has queued for the
// watcher so far has been read and handed to its RouteCache: nothing is
// waiting on its sockets and no reader is between reading and telling.
func (w *Watcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	fds := make([]unix.PollFd, len(w.fds))
	for i, fd := range w.fds {
		fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// Watch subscribes to the events of netns ("" for the caller's own) and
// sends them to events until Close. A full channel blocks the reader,
// and the kernel then reports lost events (WatchLost): nothing is missed
// silently.
func Watch(netns string, events chan<- WatchEvent) (*Watcher, error) {
	return watch(netns, events, nil)
}

func watch(netns string, events chan<- WatchEvent, cache *RouteCache) (*Watcher, error) {
	ns, err := openNamespace(netns)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	w := &Watcher{netns: netns, done: make(chan struct{}), cache: cache}
	var rt, nf int = -1, -1
	err = inNetns(ns, func() error {
		var err error
		if rt, err = subscribe(unix.NETLINK_ROUTE, rtnlgrpLink, rtnlgrpIPv4Ifaddr, rtnlgrpIPv6Ifaddr,
			rtnlgrpIPv4Route, rtnlgrpIPv6Route, rtnlgrpIPv4Rule, rtnlgrpIPv6Rule, rtnlgrpNexthop); err != nil {
			return fmt.Errorf("routing events: %w", err)
		}
		if nf, err = subscribe(unix.NETLINK_NETFILTER, nfnlgrpNftables); err != nil {
			unix.Close(rt)
			return fmt.Errorf("nftables events: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, fd := range []int{rt, nf} {
		// A non-blocking descriptor joins Go's poller, so Close wakes the
		// reader.
		f := os.NewFile(uintptr(fd), "netlink")
		w.files = append(w.files, f)
		w.fds = append(w.fds, fd)
		w.wg.Add(1)
		go w.read(f, fd == nf, events)
	}
	return w, nil
}

// subscribe opens a non-blocking netlink socket joined to groups.
func subscribe(proto int, groups ...int) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	// Without CAP_NET_ADMIN only the ordinary limit applies.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, watchRecvBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, watchRecvBuffer)
	}
	for _, g := range groups {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, g); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("joining group %d: %w", g, err)
		}
	}
	return fd, nil
}

// Close stops the watcher and waits for its readers (a reader blocked on
// a full channel gives up).
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	close(w.done)
	for _, f := range w.files {
		f.Close()
	}
	w.wg.Wait()
	return nil
}

func (w *Watcher) read(f *os.File, netfilter bool, events chan<- WatchEvent) {
	defer w.wg.Done()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 1<<16)
	var evs []WatchEvent
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			w.mu.Lock() // released once the cache knows (below)
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			if rerr == unix.EAGAIN {
				w.mu.Unlock()
				return false
			}
			return true
		})
		now := time.Now()
		if err != nil {
			return // closed
		}
		evs = evs[:0]
		switch {
		case errors.Is(rerr, unix.ENOBUFS):
			evs = append(evs, WatchEvent{Netns: w.netns, Kind: WatchLost, At: now})
		case rerr != nil && errors.Is(rerr, unix.EINTR):
		case rerr != nil:
			w.mu.Unlock()
			return
		default:
			msgs, _ := syscall.ParseNetlinkMessage(buf[:n])
			for _, m := range msgs {
				var ev WatchEvent
				var ok bool
				if netfilter {
					ev, ok = parseNftEvent(m)
				} else {
					ev, ok = parseRouteEvent(m)
				}
				if ok && !ev.cloned {
					ev.Netns, ev.At = w.netns, now
					evs = append(evs, ev)
				}
			}
		}
		if w.cache != nil {
			for _, ev := range evs {
				w.cache.touch(ev)
			}
		}
		w.mu.Unlock()
		for _, ev := range evs {
			if !w.send(events, ev) {
				return
			}
		}
	}
}

func (w *Watcher) send(events chan<- WatchEvent, ev WatchEvent) bool {
	select {
	case events <- ev:
		return true
	case <-w.done:
		return false
	}
}

// parseRouteEvent reads the few fields of an rtnetlink message the
// daemon needs to decide whether it matters.
func parseRouteEvent(m syscall.NetlinkMessage) (WatchEvent, bool) {
	t, d := m.Header.Type, m.Data
	switch t {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		return WatchEvent{Kind: WatchLink, Deleted: t == unix.RTM_DELLINK}, true
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		ev := WatchEvent{Kind: WatchAddr, Deleted: t == unix.RTM_DELADDR}
		if len(d) > 0 {
			ev.Family = d[0]
		}
		return ev, true
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(d) < unix.SizeofRtMsg {
			return WatchEvent{}, false
		}
		ev := WatchEvent{Kind: WatchRoute, Deleted: t == unix.RTM_DELROUTE, Family: d[0], Table: uint32(d[4]), Protocol: state.Protocol(d[5]),
			cloned: ne.Uint32(d[8:])&unix.RTM_F_CLONED != 0}
		dstLen := int(d[1])
		for a := (attrs{b: d[unix.SizeofRtMsg:]}); a.next(); {
			switch a.typ {
			case unix.RTA_TABLE:
				ev.Table = a.u32()
			case unix.RTA_DST:
				if ip := ipAddr(a.val); ip.IsValid() {
					ev.Dst = netip.PrefixFrom(ip, dstLen)
				}
			}
		}
		if !ev.Dst.IsValid() {
			ev.Dst = netip.PrefixFrom(zeroAddr(ev.Family), 0)
		}
		if ev.Protocol == state.Proto {
			ev.raw, ev.replace = append([]byte(nil), d...), m.Header.Flags&unix.NLM_F_REPLACE != 0
		}
		return ev, true
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		if len(d) < 12 {
			return WatchEvent{}, false
		}
		ev := WatchEvent{Kind: WatchRule, Deleted: t == unix.RTM_DELRULE, Family: d[0], Table: uint32(d[4])}
		for a := (attrs{b: d[12:]}); a.next(); {
			switch a.typ {
			case fraProtocol:
				ev.Protocol = state.Protocol(a.u8())
			case fraPriority:
				ev.Priority = a.u32()
			case fraDst:
				if ip := ipAddr(a.val); ip.IsValid() {
					ev.Dst = netip.PrefixFrom(ip, int(d[1]))
				}
			}
		}
		return ev, true
	case rtmNewNexthop, rtmDelNexthop:
		ev := WatchEvent{Kind: WatchNexthop, Deleted: t == rtmDelNexthop}
		if len(d) >= 3 {
			ev.Family, ev.Protocol = d[0], state.Protocol(d[2])
		}
		return ev, true
	}
	return WatchEvent{}, false
}

// parseNftEvent reads which table an nftables event is about; the
// generation messages that close every transaction are skipped.
func parseNftEvent(m syscall.NetlinkMessage) (WatchEvent, bool) {
	if m.Header.Type>>8 != nfnlSubsysNftables {
		return WatchEvent{}, false
	}
	msg := m.Header.Type & 0xff
	if msg == nftMsgNewGen || len(m.Data) < 4 {
		return WatchEvent{}, false
	}
	ev := WatchEvent{Kind: WatchFirewall, Family: m.Data[0]}
	switch msg {
	case nftMsgDelTable, nftMsgDelChain, nftMsgDelRule, nftMsgDelSet, nftMsgDelSetElem:
		ev.Deleted = true
	}
	for a := (attrs{b: m.Data[4:]}); a.next(); {
		if a.typ == nftaTableName {
			ev.FirewallTable = a.str()
		}
	}
	return ev, true
}
