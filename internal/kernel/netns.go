package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces live (`ip netns`).
const NetnsDir = "/run/netns"

// ListNamespaces returns the names of the named network namespaces, sorted.
// A missing NetnsDir means none.
func ListNamespaces() ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// openNamespace opens a handle on a named namespace; "" gives netns.None(),
// which inNetns takes as "the caller's own namespace".
func openNamespace(name string) (netns.NsHandle, error) {
	if name == "" {
		return netns.None(), nil
	}
	if name == "." || name == ".." || filepath.Base(name) != name {
		return netns.None(), fmt.Errorf("network namespace %q: not a valid name", name)
	}
	h, err := netns.GetFromName(name)
	if errors.Is(err, fs.ErrNotExist) {
		return netns.None(), fmt.Errorf("network namespace %q does not exist (no %s/%s)", name, NetnsDir, name)
	}
	if err != nil {
		return netns.None(), fmt.Errorf("network namespace %q: %w", name, err)
	}
	return h, nil
}

// inNetns runs fn on an OS thread that has entered ns, then puts the thread
// back. It runs fn on a fresh goroutine so that a thread which cannot be
// restored dies with that goroutine instead of running other code in the
// wrong namespace. A closed ns (netns.None()) runs fn right here.
//
// Things that bind to the namespace at creation time (sockets, files
// opened under /proc/sys/net) keep working after the thread leaves it.
func inNetns(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread exits with this goroutine.
			done <- fmt.Errorf("leave network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// onFreshThread runs fn on a goroutine locked to its OS thread and lets
// the thread die with it, so a thread whose namespace could not be
// restored never runs anything else.
func onFreshThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- fn() // no UnlockOSThread: the thread exits with the goroutine
	}()
	return <-done
}

// connIn opens a netlink socket inside ns.
func connIn(ns netns.NsHandle) (*conn, error) {
	var c *conn
	err := inNetns(ns, func() error {
		var err error
		c, err = newConn()
		return err
	})
	return c, err
}

// hostNSPath is the initial network namespace (state.HostNamespace); a
// variable so that tests can point it at a namespace of their own.
var hostNSPath = "/proc/1/ns/net"

// openHostNamespace opens the initial network namespace.
func openHostNamespace() (netns.NsHandle, error) {
	fd, err := unix.Open(hostNSPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return netns.None(), fmt.Errorf("the initial network namespace (%s): %w", hostNSPath, err)
	}
	return netns.NsHandle(fd), nil
}

// openUnderlay opens a namespace named the way state.VXLAN names its
// underlay's: state.HostNamespace for the initial one, else a name under
// /run/netns ("" gives netns.None(), the caller's own).
func openUnderlay(name string) (netns.NsHandle, error) {
	if name == state.HostNamespace {
		return openHostNamespace()
	}
	return openNamespace(name)
}

// nsidNames maps the netns ids that namespace c lives in uses for other
// named namespaces (IFLA_LINK_NETNSID) to their names, and the initial
// namespace's id, unless a name has it, to state.HostNamespace.
// Namespaces without an id assigned are left out.
func (c *conn) nsidNames() (map[int32]string, error) {
	names, err := ListNamespaces()
	if err != nil {
		return nil, err
	}
	out := make(map[int32]string)
	for _, name := range names {
		h, err := netns.GetFromName(name)
		if err != nil {
			continue // deleted meanwhile
		}
		id, err := c.nsid(int(h))
		h.Close()
		if err == nil && id >= 0 {
			out[id] = name
		}
	}
	if h, err := openHostNamespace(); err == nil {
		id, err := c.nsid(int(h))
		h.Close()
		if _, named := out[id]; err == nil && id >= 0 && !named {
			out[id] = state.HostNamespace
		}
	}
	return out, nil
}

// sameNamespace reports whether two namespace handles are the same
// namespace; netns.None() stands for the caller's own.
func sameNamespace(a, b netns.NsHandle) (bool, error) {
	var sa, sb unix.Stat_t
	for _, x := range []struct {
		h  netns.NsHandle
		st *unix.Stat_t
	}{{a, &sa}, {b, &sb}} {
		var err error
		if x.h.IsOpen() {
			err = unix.Fstat(int(x.h), x.st)
		} else {
			err = unix.Stat("/proc/thread-self/ns/net", x.st)
		}
		if err != nil {
			return false, err
		}
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// nsid asks for the id of the namespace behind fd (RTM_GETNSID).
func (c *conn) nsid(fd int) (int32, error) {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_GETNSID, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	c.enc.zeros(4) // struct rtgenmsg, padded
	c.enc.u32(unix.NETNSA_FD, uint32(fd))
	c.enc.end(off)
	id := int32(-1)
	err := c.do(seq, func(m message) error {
		if m.typ != unix.RTM_NEWNSID || len(m.data) < 4 {
			return nil
		}
		a := attrs{b: m.data[4:]}
		for a.next() {
			if a.typ == unix.NETNSA_NSID {
				id = int32(a.u32())
			}
		}
		return nil
	})
	return id, err
}
