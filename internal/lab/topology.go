package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultPrefix is the namespace prefix of `tunroute lab`.
const DefaultPrefix = "tunroute-lab-"

// DefaultRunDir holds the lab's pid file, log and control sockets.
const DefaultRunDir = "/run/tunroute/lab"

// Roles: the lab's four namespaces are named Prefix+Role.
const (
	Client    = "client"
	ISP       = "isp"
	VPNServer = "vpnserver"
	Inet      = "inet"
)

// Roles lists the namespaces in creation order.
var Roles = []string{Client, ISP, VPNServer, Inet}

// Addresses of the lab (see doc.go for the picture).
var (
	ClientEth4 = netip.MustParsePrefix("10.1.0.2/24")
	ClientEth6 = netip.MustParsePrefix("2001:db8:1::2/64")
	ISPC04     = netip.MustParsePrefix("10.1.0.1/24")
	ISPC06     = netip.MustParsePrefix("2001:db8:1::1/64")

	ServerEth4 = netip.MustParsePrefix("198.51.100.2/24")
	ServerEth6 = netip.MustParsePrefix("2001:db8:51::2/64")
	ISPS04     = netip.MustParsePrefix("198.51.100.1/24")
	ISPS06     = netip.MustParsePrefix("2001:db8:51::1/64")

	InetEth4 = netip.MustParsePrefix("203.0.113.2/24")
	InetEth6 = netip.MustParsePrefix("2001:db8:203::2/64")
	ISPI04   = netip.MustParsePrefix("203.0.113.1/24")
	ISPI06   = netip.MustParsePrefix("2001:db8:203::1/64")

	ClientWG4 = netip.MustParsePrefix("10.30.0.2/24")
	ClientWG6 = netip.MustParsePrefix("2001:db8:30::2/64")
	ServerWG4 = netip.MustParsePrefix("10.30.0.1/24")
	ServerWG6 = netip.MustParsePrefix("2001:db8:30::1/64")
)

// WireGuard parameters of the lab.
const (
	WGDevice    = "wg0"
	WGPort      = 51820
	WGMTU       = 1420
	WGKeepalive = 15 // seconds, client side
)

// EchoPort is the TCP port of the echo server the lab runs in inet.
const EchoPort = 8080

// Lab is one instance of the topology, identified by its namespace prefix.
type Lab struct {
	Prefix string // namespace names are Prefix+role
	RunDir string // pid file, log, control sockets; DefaultRunDir if empty
}

// New returns the lab with the given prefix and the default run directory.
func New(prefix string) *Lab { return &Lab{Prefix: prefix, RunDir: DefaultRunDir} }

// NS returns the name of the namespace of a role.
func (l *Lab) NS(role string) string { return l.Prefix + role }

func (l *Lab) runDir() string {
	if l.RunDir == "" {
		return DefaultRunDir
	}
	return l.RunDir
}

// Namespaces lists the lab's namespaces that currently exist.
func (l *Lab) Namespaces() []string {
	var out []string
	for _, r := range Roles {
		if nsExists(l.NS(r)) {
			out = append(out, l.NS(r))
		}
	}
	return out
}

// veth is one cable: Name in namespace A, Peer in namespace B.
type veth struct {
	a, name, b, peer string
	aAddrs, bAddrs   []netip.Prefix
}

func (l *Lab) cables() []veth {
	return []veth{
		{Client, "eth0", ISP, "c0", []netip.Prefix{ClientEth4, ClientEth6}, []netip.Prefix{ISPC04, ISPC06}},
		{VPNServer, "eth0", ISP, "s0", []netip.Prefix{ServerEth4, ServerEth6}, []netip.Prefix{ISPS04, ISPS06}},
		{Inet, "eth0", ISP, "i0", []netip.Prefix{InetEth4, InetEth6}, []netip.Prefix{ISPI04, ISPI06}},
	}
}

// defaultGateways: the default routes of the edge namespaces.
var defaultGateways = map[string][]netip.Addr{
	Client:    {ISPC04.Addr(), ISPC06.Addr()},
	VPNServer: {ISPS04.Addr(), ISPS06.Addr()},
	Inet:      {ISPI04.Addr(), ISPI06.Addr()},
}

// Build creates the four namespaces with their cables, addresses, routes,
// sysctls and the VPN server's masquerade. It does not start WireGuard (see
// StartWireGuard and Up). On failure it removes what it created.
//
// Every change is made through a netlink socket, an nftables socket or a
// /proc/sys file opened inside a lab namespace; veth pairs are created in
// one lab namespace with the peer put straight into another, so the host's
// namespace is never touched.
func (l *Lab) Build() (err error) {
	if ex := l.Namespaces(); len(ex) > 0 {
		return fmt.Errorf("%w: namespaces %v exist", ErrExists, ex)
	}
	defer func() {
		if err != nil {
			l.deleteNamespaces()
		}
	}()
	handles := map[string]netns.NsHandle{}
	nl := map[string]*netlink.Handle{}
	defer func() {
		for _, h := range nl {
			h.Close()
		}
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, r := range Roles {
		name := l.NS(r)
		if err := createNamedNS(name); err != nil {
			return err
		}
		h, err := netns.GetFromName(name)
		if err != nil {
			return fmt.Errorf("open netns %s: %w", name, err)
		}
		handles[r] = h
		nh, err := netlink.NewHandleAt(h)
		if err != nil {
			return fmt.Errorf("netlink in netns %s: %w", name, err)
		}
		nl[r] = nh
		// Before any link exists, so that every link inherits them:
		// no duplicate address detection (v6 usable at once) and loose
		// reverse-path filtering, whatever the host's defaults are.
		sys := [][2]string{
			{"net.ipv6.conf.all.accept_dad", "0"},
			{"net.ipv6.conf.default.accept_dad", "0"},
			{"net.ipv6.conf.all.dad_transmits", "0"},
			{"net.ipv6.conf.default.dad_transmits", "0"},
			{"net.ipv4.conf.all.rp_filter", "2"},
			{"net.ipv4.conf.default.rp_filter", "2"},
		}
		if r == ISP || r == VPNServer {
			sys = append(sys,
				[2]string{"net.ipv4.ip_forward", "1"},
				[2]string{"net.ipv6.conf.all.forwarding", "1"})
		}
		if err := setSysctls(name, sys); err != nil {
			return err
		}
		lo, err := nh.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("netns %s: lo: %w", name, err)
		}
		if err := nh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("netns %s: set lo up: %w", name, err)
		}
	}
	for _, c := range l.cables() {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: c.name},
			PeerName:      c.peer,
			PeerNamespace: netlink.NsFd(handles[c.b]),
		}
		if err := nl[c.a].LinkAdd(v); err != nil {
			return fmt.Errorf("netns %s: add veth %s (peer %s in %s): %w", l.NS(c.a), c.name, c.peer, l.NS(c.b), err)
		}
		if err := configureLink(nl[c.a], l.NS(c.a), c.name, c.aAddrs); err != nil {
			return err
		}
		if err := configureLink(nl[c.b], l.NS(c.b), c.peer, c.bAddrs); err != nil {
			return err
		}
	}
	for _, r := range Roles {
		for _, gw := range defaultGateways[r] {
			if err := addDefaultRoute(nl[r], gw); err != nil {
				return fmt.Errorf("netns %s: default via %s: %w", l.NS(r), gw, err)
			}
		}
	}
	if err := masquerade(handles[VPNServer], nftTable, "eth0", ServerWG4.Masked(), ServerWG6.Masked()); err != nil {
		return fmt.Errorf("netns %s: %w", l.NS(VPNServer), err)
	}
	// A veth that is up drops what it is given until the kernel's link
	// watch has activated it (up to a second later); the operational state
	// turns "up" at that moment. Wait for it, so that the first packets
	// (the first neighbour solicitation, the first SYN) are not lost.
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range l.cables() {
		for _, end := range [][2]string{{c.a, c.name}, {c.b, c.peer}} {
			for {
				link, err := nl[end[0]].LinkByName(end[1])
				if err != nil {
					return fmt.Errorf("netns %s: %s: %w", l.NS(end[0]), end[1], err)
				}
				if link.Attrs().OperState == netlink.OperUp {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("netns %s: %s is not operational (state %s)", l.NS(end[0]), end[1], link.Attrs().OperState)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	return nil
}

func configureLink(h *netlink.Handle, nsName, dev string, addrs []netip.Prefix) error {
	link, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("netns %s: %s: %w", nsName, dev, err)
	}
	for _, a := range addrs {
		if err := h.AddrAdd(link, nlAddr(a)); err != nil {
			return fmt.Errorf("netns %s: add %s to %s: %w", nsName, a, dev, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("netns %s: set %s up: %w", nsName, dev, err)
	}
	return nil
}

// nlAddr is an interface address without duplicate address detection.
func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Flags: unix.IFA_F_NODAD,
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func addDefaultRoute(h *netlink.Handle, gw netip.Addr) error {
	dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Is6() {
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return h.RouteAdd(&netlink.Route{Dst: ipNet(dst), Gw: gw.AsSlice()})
}

// Destroy deletes the lab's namespaces. It does not stop the serve process
// (see Down). Namespaces that do not exist are skipped.
func (l *Lab) Destroy() error { return l.deleteNamespaces() }

func (l *Lab) deleteNamespaces() error {
	var errs []error
	for i := len(Roles) - 1; i >= 0; i-- {
		if err := deleteNamedNS(l.NS(Roles[i])); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrExists is returned by Build and Up when (part of) the lab exists.
var ErrExists = errors.New("lab already exists")

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
