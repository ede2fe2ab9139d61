package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tunroute/tunroute/internal/netnsname"
	"github.com/tunroute/tunroute/internal/state"
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
	c, err := connAt(name)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.setLink("lo", true, DomainMark+netnsname.Name(top).Owner()); err != nil {
		return fmt.Errorf("marking network namespace %q: %w", name, err)
	}
	return nil
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
	c, err := connIn(ns)
	if err != nil {
		return "", err
	}
	defer c.close()
	lo, err := c.getLink("lo", 0, -1)
	if err != nil {
		return "", err
	}
	owner, ok := strings.CutPrefix(lo.Alias, DomainMark)
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

// MoveLink moves the device dev from the namespace `from` to the namespace
// `to` ("" is the caller's own), keeping its addresses and its
// administrative state: moving a device between namespaces flushes both,
// and a moved tunnel must carry on as it was.
func MoveLink(dev, from, to string) error {
	src, err := connAt(from)
	if err != nil {
		return err
	}
	defer src.close()
	dst, err := connAt(to)
	if err != nil {
		return err
	}
	defer dst.close()
	link, err := src.getLink(dev, 0, -1)
	if err != nil {
		return fmt.Errorf("moving %s: %w", dev, err)
	}
	addrs, err := src.dumpAddrs(unix.AF_UNSPEC, func(int) string { return dev })
	if err != nil {
		return fmt.Errorf("moving %s: reading its addresses: %w", dev, err)
	}
	target, err := nsFd(to)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := src.setNamespace(link.Index, int(target)); err != nil {
		return fmt.Errorf("moving %s into %s: %w", dev, nsWord(to), err)
	}
	moved, err := dst.getLink(dev, 0, -1)
	if err != nil {
		return fmt.Errorf("moving %s: it is not in %s afterwards: %w", dev, nsWord(to), err)
	}
	for _, a := range addrs {
		if a.Index != link.Index || (a.Scope == state.ScopeLink && a.Prefix.Addr().Is6()) {
			continue // another device's, or an IPv6 link-local address: those come back by themselves
		}
		a.Label = ""
		if a.Prefix.Addr().Is6() && a.Flags&state.AddrTentative == 0 {
			// It passed duplicate address detection on this link already;
			// tentative again, it could not be a route's source for a while.
			a.Flags |= state.AddrNoDAD
		}
		if err := dst.replaceAddr(&a, moved.Index); err != nil {
			return fmt.Errorf("moving %s: restoring address %s: %w", dev, a.Prefix, err)
		}
	}
	if link.Up {
		if err := dst.setAdminState(dev, true); err != nil {
			return fmt.Errorf("moving %s: setting it up: %w", dev, err)
		}
	}
	return nil
}

// setNamespace moves the device with index ifindex into the namespace
// behind the file descriptor nsFd.
func (c *conn) setNamespace(ifindex, nsFd int) error {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_NEWLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	h := c.enc.zeros(unix.SizeofIfInfomsg)
	ne.PutUint32(h[4:], uint32(ifindex))
	c.enc.u32(unix.IFLA_NET_NS_FD, uint32(nsFd))
	c.enc.end(off)
	return c.do(seq, nil)
}

// replaceAddr puts the address a on the device with index ifindex (like
// `ip addr replace`), waiting for the kernel's answer.
func (c *conn) replaceAddr(a *state.Addr, ifindex int) error {
	seq := c.nextSeq()
	c.enc.reset()
	if err := c.enc.encodeAddr(state.Replace, a, ifindex, seq); err != nil {
		return err
	}
	ne.PutUint16(c.enc.b[6:], ne.Uint16(c.enc.b[6:])|unix.NLM_F_ACK)
	return c.do(seq, nil)
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

// connAt opens an rtnetlink connection in the named namespace ("" the
// caller's own).
func connAt(name string) (*conn, error) {
	ns, err := openNamespace(name)
	if err != nil {
		return nil, err
	}
	if ns.IsOpen() {
		defer ns.Close()
	}
	return connIn(ns)
}
