package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces are bind-mounted, the same
// place `ip netns` uses.
const netnsDir = "/run/netns"

// Do runs f on an OS thread that has entered the named network namespace.
// Sockets, TUN devices and /proc/sys/net files opened by f belong to that
// namespace for their whole life, whichever thread uses them later.
//
// The thread is never returned to the Go scheduler: f runs in a fresh
// goroutine locked to its thread, and the goroutine exits without
// unlocking, which makes the runtime terminate the thread. So a failure to
// switch back can never leave another goroutine in the lab namespace, and
// the host's namespace is never the one f sees. Goroutines started by f run
// on other threads, in the host's namespace: f must open what it needs
// itself.
func Do(nsName string, f func() error) error {
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return fmt.Errorf("netns %s: %w", nsName, err)
	}
	defer h.Close()
	return doIn(h, nsName, f)
}

// NetlinkIn opens a netlink handle in the named network namespace; the
// caller closes it.
func NetlinkIn(nsName string) (*netlink.Handle, error) {
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", nsName, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in netns %s: %w", nsName, err)
	}
	return nh, nil
}

func doIn(h netns.NsHandle, nsName string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see Do.
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", nsName, err)
			return
		}
		cur, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", nsName, err)
			return
		}
		same := cur.Equal(h)
		cur.Close()
		if !same {
			errc <- fmt.Errorf("enter netns %s: thread is not in it after setns", nsName)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// nsExists reports whether a network namespace of that name is mounted.
func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// createNamedNS creates a new, empty network namespace and mounts it as
// /run/netns/NAME (as `ip netns add NAME` does). The unshare happens on a
// throw-away thread, so the caller's namespace never changes.
func createNamedNS(name string) error {
	if nsExists(name) {
		return fmt.Errorf("netns %s already exists", name)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread ends up in the new namespace
		// and must die with the goroutine.
		h, err := netns.NewNamed(name)
		if err != nil {
			// NewNamed may leave an empty file behind if the mount failed.
			if !errors.Is(err, os.ErrExist) {
				os.Remove(filepath.Join(netnsDir, name))
			}
			errc <- fmt.Errorf("create netns %s: %w", name, err)
			return
		}
		h.Close()
		errc <- nil
	}()
	return <-errc
}

// deleteNamedNS unmounts /run/netns/NAME and removes it. The namespace
// itself disappears when nothing else holds it (no process, no open fd).
// A missing namespace is not an error.
func deleteNamedNS(name string) error {
	p := filepath.Join(netnsDir, name)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
		// EINVAL: not a mount point (a stale file); remove it anyway.
		return fmt.Errorf("delete netns %s: unmount: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// setSysctls writes net.* sysctls inside the named namespace. Keys are in
// dotted form ("net.ipv4.ip_forward"). /proc/sys/net resolves to the
// namespace of the thread that opens the file, so the files are opened in Do.
func setSysctls(nsName string, kv [][2]string) error {
	return Do(nsName, func() error {
		for _, p := range kv {
			path := "/proc/sys/" + strings.ReplaceAll(p[0], ".", "/")
			if err := os.WriteFile(path, []byte(p[1]), 0); err != nil {
				return fmt.Errorf("netns %s: sysctl %s=%s: %w", nsName, p[0], p[1], err)
			}
		}
		return nil
	})
}

// readSysctl reads one net.* sysctl inside the named namespace.
func readSysctl(nsName, key string) (string, error) {
	var v string
	err := Do(nsName, func() error {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}
