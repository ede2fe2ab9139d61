package kernel

import (
	"errors"
	"fmt"
	"github.com/tunroute/tunroute/internal/netnsname"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DomainMark starts the ifalias tunroute gives the loopback device of a
// network namespace it created for a routing domain: the namespace's
// owner record, kept inside the namespace itself (not "tunroute:", which
// marks links tunroute may delete). The rest names the
// namespace whose config has the domain ("host", or "netns NAME"), so a
// tunroute working on another namespace leaves it alone.
const DomainMark = "tunroute-domain of "

// CreateNamespace creates the named network namespace (like `ip netns
// add`) for a domain of the config applied in namespace top, sets its
// loopback up and marks it. A namespace of that name that exists already
// is an error unless it is that config's.
func CreateNamespace(name, top string) error {
	if err := checkNamespaceName(name); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(NetnsDir, name)); err == nil {
		owner, err := NamespaceOwner(name)
		if err != nil {
			return err
		}
		if owner != netnsname.Name(top).Owner() {
			return fmt.Errorf("network namespace %q exists and is not a domain of this config; rename the domain or remove the namespace", name)
		}
		return nil
	}
	err := onFreshThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			netns.Set(orig)
			return fmt.Errorf("creating network namespace %q: %w", name, err)
		}
		h.Close()
		return netns.Set(orig)
	})
	if err != nil {
		return err
	}
	if err := markNamespace(name, top); err != nil {
		netns.DeleteNamed(name)
		return err
	}
	return nil
}

func markNamespace(name, top string) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := nh.LinkSetAlias(lo, DomainMark+netnsname.Name(top).Owner()); err != nil {
		return fmt.Errorf("marking network namespace %q: %w", name, err)
	}
	return nh.LinkSetUp(lo)
}

// NamespaceOwner returns the owner part of a namespace's domain mark
// ("host", "netns NAME"), or "" when it has none or does not exist.
func NamespaceOwner(name string) (string, error) {
	ns, err := netns.GetFromName(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", err
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return "", err
	}
	owner, ok := strings.CutPrefix(lo.Attrs().Alias, DomainMark)
	if !ok {
		return "", nil
	}
	return owner, nil
}

// DomainNamespaces lists the namespaces tunroute created for domains of
// the config applied in namespace top.
func DomainNamespaces(top string) ([]string, error) {
	names, err := ListNamespaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if owner, err := NamespaceOwner(n); err == nil && owner == netnsname.Name(top).Owner() {
			out = append(out, n)
		}
	}
	return out, nil
}

// DeleteNamespace removes a namespace tunroute created for a domain of the
// config applied in top (like `ip netns delete`); it refuses any other.
func DeleteNamespace(name, top string) error {
	if err := checkNamespaceName(name); err != nil {
		return err
	}
	owner, err := NamespaceOwner(name)
	if err != nil {
		return err
	}
	if owner != netnsname.Name(top).Owner() {
		if _, err := os.Stat(filepath.Join(NetnsDir, name)); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("network namespace %q is not a domain of this config; not deleting it", name)
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("deleting network namespace %q: %w", name, err)
	}
	return nil
}

func checkNamespaceName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return fmt.Errorf("network namespace %q: not a valid name", name)
	}
	return nil
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

// MoveLink moves the device dev from the namespace `from` to the namespace
// `to` ("" is the caller's own), keeping its addresses and its
// administrative state: moving a device between namespaces flushes both,
// and a moved tunnel must carry on as it was.
func MoveLink(dev, from, to string) error {
	src, err := handleAt(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := handleAt(to)
	if err != nil {
		return err
	}
	defer dst.Close()
	link, err := src.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("moving %s: %w", dev, err)
	}
	addrs, err := src.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("moving %s: reading its addresses: %w", dev, err)
	}
	wasUp := link.Attrs().Flags&1 != 0 // IFF_UP
	target, err := nsFd(to)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := src.LinkSetNsFd(link, int(target)); err != nil {
		return fmt.Errorf("moving %s into %s: %w", dev, nsWord(to), err)
	}
	moved, err := dst.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("moving %s: it is not in %s afterwards: %w", dev, nsWord(to), err)
	}
	for _, a := range addrs {
		if a.Scope == int(netlink.SCOPE_LINK) && a.IP.To4() == nil {
			continue // IPv6 link-local addresses come back by themselves
		}
		a := a
		a.LinkIndex = moved.Attrs().Index
		a.Label = ""
		if a.IP.To4() == nil && a.Flags&unix.IFA_F_TENTATIVE == 0 {
			// It passed duplicate address detection on this link already;
			// tentative again, it could not be a route's source for a while.
			a.Flags |= unix.IFA_F_NODAD
		}
		if err := dst.AddrReplace(moved, &a); err != nil {
			return fmt.Errorf("moving %s: restoring address %s: %w", dev, a.IPNet, err)
		}
	}
	if wasUp {
		if err := dst.LinkSetUp(moved); err != nil {
			return fmt.Errorf("moving %s: setting it up: %w", dev, err)
		}
	}
	return nil
}

func nsWord(name string) string {
	if name == "" {
		return "the host namespace"
	}
	return "network namespace " + name
}

func nsFd(name string) (netns.NsHandle, error) {
	if name == "" {
		return netns.GetFromPid(os.Getpid())
	}
	h, err := openNamespace(name)
	if err != nil {
		return netns.None(), err
	}
	return h, nil
}

func handleAt(name string) (*netlink.Handle, error) {
	if name == "" {
		return netlink.NewHandle()
	}
	ns, err := openNamespace(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}
