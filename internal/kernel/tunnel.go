package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// IFLA_INFO_DATA attributes of gre/ip6gre (IFLA_GRE_*) and vti/vti6
// (IFLA_VTI_*), from linux/if_tunnel.h; x/sys/unix has only the xfrm ones.
const (
	iflaGRELink   = 1
	iflaGREIFlags = 2
	iflaGREOFlags = 3
	iflaGREIKey   = 4
	iflaGREOKey   = 5
	iflaGRELocal  = 6
	iflaGRERemote = 7
	iflaGRETTL    = 8

	iflaVTILink   = 1
	iflaVTIIKey   = 2
	iflaVTIOKey   = 3
	iflaVTILocal  = 4
	iflaVTIRemote = 5

	// greKeyFlag is GRE_KEY in IFLA_GRE_[IO]FLAGS (__be16): the key is set.
	greKeyFlag = 0x2000
)

// decodeTunnel reads the IFLA_INFO_DATA of an xfrm, vti(6) or (ip6)gre
// device; the underlay index (IFLA_*_LINK) comes back for resolveLinks
// to name. Unspecified addresses (the kernel reports 0.0.0.0 for "any")
// become the zero Addr, as a desired state has them.
func decodeTunnel(kind string, data []byte) (*state.Tunnel, int) {
	t := &state.Tunnel{}
	under := 0
	var ikeyOn, okeyOn bool
	var ikey, okey uint32
	a := attrs{b: data}
	for a.next() {
		switch kind {
		case state.KindXFRM:
			switch a.typ {
			case unix.IFLA_XFRM_LINK:
				under = int(a.u32())
			case unix.IFLA_XFRM_IF_ID:
				t.IfID = a.u32()
			}
		case state.KindVTI, state.KindVTI6:
			switch a.typ {
			case iflaVTILink:
				under = int(a.u32())
			case iflaVTIIKey:
				t.IKey = a.be32()
			case iflaVTIOKey:
				t.OKey = a.be32()
			case iflaVTILocal:
				t.Local = specified(ipAddr(a.val))
			case iflaVTIRemote:
				t.Remote = specified(ipAddr(a.val))
			}
		case state.KindGRE, state.KindIP6GRE:
			switch a.typ {
			case iflaGRELink:
				under = int(a.u32())
			case iflaGREIFlags:
				ikeyOn = len(a.val) >= 2 && binary.BigEndian.Uint16(a.val)&greKeyFlag != 0
			case iflaGREOFlags:
				okeyOn = len(a.val) >= 2 && binary.BigEndian.Uint16(a.val)&greKeyFlag != 0
			case iflaGREIKey:
				ikey = a.be32()
			case iflaGREOKey:
				okey = a.be32()
			case iflaGRELocal:
				t.Local = specified(ipAddr(a.val))
			case iflaGRERemote:
				t.Remote = specified(ipAddr(a.val))
			case iflaGRETTL:
				t.TTL = a.u8()
			}
		}
	}
	if ikeyOn {
		t.IKey = ikey
	}
	if okeyOn {
		t.OKey = okey
	}
	return t, under
}

func specified(a netip.Addr) netip.Addr {
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// checkTunnel refuses tunnel settings the kernel would take wrongly or
// with an unhelpful EINVAL.
func checkTunnel(l *state.Link) error {
	t := l.Tunnel
	if t == nil {
		return fmt.Errorf("a %s device needs its tunnel settings", l.Kind)
	}
	v6 := l.Kind == state.KindVTI6 || l.Kind == state.KindIP6GRE
	for _, a := range []netip.Addr{t.Local, t.Remote} {
		if a.IsValid() && a.Is6() != v6 {
			if v6 {
				return fmt.Errorf("a %s device's endpoints are IPv6 addresses, not %s", l.Kind, a)
			}
			six := map[string]string{state.KindGRE: state.KindIP6GRE, state.KindVTI: state.KindVTI6}[l.Kind]
			return fmt.Errorf("a %s device's endpoints are IPv4 addresses, not %s (use %s)", l.Kind, a, six)
		}
	}
	if l.Kind == state.KindXFRM {
		if t.IfID == 0 {
			return errors.New("an xfrm device needs an if_id (1-4294967295)")
		}
		if t.Local.IsValid() || t.Remote.IsValid() || t.IKey != 0 || t.OKey != 0 || t.TTL != 0 {
			return errors.New("an xfrm device has only an if_id and an underlying device")
		}
	}
	return nil
}

// encodeTunnelData appends the IFLA_INFO_DATA of a tunnel device;
// underIndex is the underlying device's index (0: none).
func (e *encoder) encodeTunnelData(l *state.Link, underIndex int) error {
	if err := checkTunnel(l); err != nil {
		return err
	}
	t := l.Tunnel
	data := e.nest(unix.IFLA_INFO_DATA)
	switch l.Kind {
	case state.KindXFRM:
		if underIndex > 0 {
			e.u32(unix.IFLA_XFRM_LINK, uint32(underIndex))
		}
		e.u32(unix.IFLA_XFRM_IF_ID, t.IfID)
	case state.KindVTI, state.KindVTI6:
		if underIndex > 0 {
			e.u32(iflaVTILink, uint32(underIndex))
		}
		e.be32(iflaVTIIKey, t.IKey)
		e.be32(iflaVTIOKey, t.OKey)
		e.tunnelAddr(iflaVTILocal, t.Local, l.Kind == state.KindVTI6)
		e.tunnelAddr(iflaVTIRemote, t.Remote, l.Kind == state.KindVTI6)
	case state.KindGRE, state.KindIP6GRE:
		if underIndex > 0 {
			e.u32(iflaGRELink, uint32(underIndex))
		}
		var iflags, oflags uint16
		if t.IKey != 0 {
			iflags = greKeyFlag
		}
		if t.OKey != 0 {
			oflags = greKeyFlag
		}
		e.attr(iflaGREIFlags, binary.BigEndian.AppendUint16(nil, iflags))
		e.attr(iflaGREOFlags, binary.BigEndian.AppendUint16(nil, oflags))
		e.be32(iflaGREIKey, t.IKey)
		e.be32(iflaGREOKey, t.OKey)
		e.tunnelAddr(iflaGRELocal, t.Local, l.Kind == state.KindIP6GRE)
		e.tunnelAddr(iflaGRERemote, t.Remote, l.Kind == state.KindIP6GRE)
		if t.TTL != 0 {
			e.u8(iflaGRETTL, t.TTL)
		}
	default:
		return fmt.Errorf("%q is not a tunnel kind", l.Kind)
	}
	e.endNest(data)
	return nil
}

// tunnelAddr appends an endpoint; an unset one is sent as the family's
// "any" so that a change can also clear it.
func (e *encoder) tunnelAddr(typ uint16, a netip.Addr, v6 bool) {
	switch {
	case a.IsValid():
		e.addr(typ, a)
	case v6:
		e.addr(typ, netip.IPv6Unspecified())
	default:
		e.addr(typ, netip.IPv4Unspecified())
	}
}

// changeTunnel changes an existing tunnel device's settings in place
// (RTM_NEWLINK without NLM_F_CREATE: the kernel's changelink), keeping
// its addresses and routes.
func (x *executor) changeTunnel(l *state.Link) error {
	under := 0
	if l.Tunnel != nil && l.Tunnel.Dev != "" {
		var err error
		if under, err = x.dev(l.Tunnel.Dev, 0); err != nil {
			return fmt.Errorf("underlying device: %w", err)
		}
	}
	c := x.c
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_NEWLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	c.enc.ifinfo(l.Up)
	c.enc.str(unix.IFLA_IFNAME, l.Name)
	info := c.enc.nest(unix.IFLA_LINKINFO)
	c.enc.str(unix.IFLA_INFO_KIND, l.Kind)
	if err := c.enc.encodeTunnelData(l, under); err != nil {
		return err
	}
	c.enc.endNest(info)
	c.enc.end(off)
	return c.do(seq, nil)
}

// disablePolicyName is the sysctl that turns off the IPsec policy check
// on a device's decrypted input.
func disablePolicyName(l *state.Link) string {
	fam := "ipv4"
	if l.Kind == state.KindVTI6 || l.Kind == state.KindIP6GRE {
		fam = "ipv6"
	}
	return "net." + fam + ".conf." + strings.ReplaceAll(l.Name, ".", "/") + ".disable_policy"
}

// setDisablePolicy writes a tunnel device's disable_policy in the
// handle's namespace. The sysctl lives and dies with the device, so the
// device's deletion is its undo.
func (x *executor) setDisablePolicy(l *state.Link) error {
	v := "0"
	if l.Tunnel != nil && l.Tunnel.DisablePolicy {
		v = "1"
	}
	return inNetns(x.h.ns, func() error {
		name := disablePolicyName(l)
		if _, err := os.Stat(sysctlPath(name)); err != nil && v == "0" {
			return nil // a kernel without it (IPv6 before 5.14) has the policy check on, as asked
		}
		return writeSysctl(name, v)
	})
}

// writeSysctl writes one sysctl of the calling thread's namespace.
func writeSysctl(name, v string) error {
	if err := os.WriteFile(sysctlPath(name), []byte(v+"\n"), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", name, v, err)
	}
	return nil
}

// newTunnel creates an xfrm, vti(6) or (ip6)gre device, its underlying
// device named in Tunnel.Dev resolved in this namespace.
func (x *executor) newTunnel(l *state.Link) error {
	args := newLinkArgs{peerNSFd: -1, nsFd: -1}
	if l.Tunnel != nil && l.Tunnel.Dev != "" {
		var err error
		if args.underIndex, err = x.dev(l.Tunnel.Dev, 0); err != nil {
			return fmt.Errorf("underlying device: %w", err)
		}
	}
	c := x.c
	seq := c.nextSeq()
	c.enc.reset()
	if err := c.enc.encodeNewLink(l, args, seq); err != nil {
		return err
	}
	return c.do(seq, nil)
}

// setDevice gives a link the settings that do not travel in its
// RTM_NEWLINK: a tunnel's disable_policy, a WireGuard device's keys and
// peers.
func (x *executor) setDevice(l *state.Link) error {
	switch {
	case l.Tunnel != nil:
		return x.setDisablePolicy(l)
	case l.WireGuard != nil:
		return x.configureWireGuard(l)
	}
	return nil
}

// reconfigure changes an existing device's settings in place: a
// tunnel's through changelink, a WireGuard device's through its API,
// and its administrative state (up or down) when it differs from prev's.
// Addresses and routes on it stay.
func (x *executor) reconfigure(l, prev *state.Link) error {
	if l.Tunnel != nil {
		if err := x.changeTunnel(l); err != nil {
			return err
		}
	}
	if err := x.setDevice(l); err != nil {
		return err
	}
	if prev != nil && prev.Up != l.Up {
		return x.c.setAdminState(l.Name, l.Up)
	}
	return nil
}

// readDisablePolicy fills in the tunnels' disable_policy from the calling
// thread's namespace.
func readDisablePolicy(links []state.Link) {
	for i := range links {
		l := &links[i]
		if l.Tunnel == nil {
			continue
		}
		b, err := os.ReadFile(sysctlPath(disablePolicyName(l)))
		l.Tunnel.DisablePolicy = err == nil && strings.TrimSpace(string(b)) == "1"
	}
}
