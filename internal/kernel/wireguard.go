package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/tunroute/tunroute/internal/state"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// WireGuardSocketDir is where userspace WireGuard implementations
// (wireguard-go) put their UAPI sockets, one per device, NAME.sock. It is
// a directory of the mount namespace, not of the network namespace: two
// namespaces' devices of the same name share it unless each daemon has a
// private /run/wireguard (lab-notes.md, item 4).
var WireGuardSocketDir = "/var/run/wireguard"

// isWireGuard reports whether a link is a WireGuard device: a kernel one,
// or a TUN device with a userspace implementation's socket.
func isWireGuard(l *state.Link) bool {
	if l.Kind == state.KindWireGuard {
		return true
	}
	if l.Kind != "tun" {
		return false
	}
	fi, err := os.Stat(WireGuardSocketDir + "/" + l.Name + ".sock")
	return err == nil && fi.Mode()&fs.ModeSocket != 0
}

// readWireGuard fills in the WireGuard configuration and peer health of
// the namespace's WireGuard devices. It runs inside the namespace: the
// kernel's WireGuard API is a generic netlink family of the namespace.
func (h *Handle) readWireGuard(links []state.Link) error {
	var wg []*state.Link
	for i := range links {
		if isWireGuard(&links[i]) {
			wg = append(wg, &links[i])
		}
	}
	if len(wg) == 0 {
		return nil
	}
	return inNetns(h.ns, func() error {
		c, err := wgctrl.New()
		if err != nil {
			return fmt.Errorf("wireguard: %w", err)
		}
		defer c.Close()
		for _, l := range wg {
			d, err := c.Device(l.Name)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // a TUN whose daemon went away with its socket left behind
				}
				if errors.Is(err, os.ErrPermission) {
					continue // not root: the device's settings stay unknown (nil)
				}
				return fmt.Errorf("wireguard device %s: %w", l.Name, err)
			}
			l.WireGuard = wireGuardState(d)
		}
		return nil
	})
}

func wireGuardState(d *wgtypes.Device) *state.WireGuard {
	w := &state.WireGuard{ListenPort: d.ListenPort, FwMark: uint32(d.FirewallMark)}
	var zero wgtypes.Key
	if d.PrivateKey != zero {
		w.PublicKey = d.PublicKey.String()
		w.PrivateKey = append([]byte(nil), d.PrivateKey[:]...)
	}
	for _, p := range d.Peers {
		sp := state.WGPeer{PublicKey: p.PublicKey.String(), Keepalive: int(p.PersistentKeepaliveInterval / time.Second),
			LastHandshake: p.LastHandshakeTime, RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes,
			PresharedKeyID: state.KeyID(p.PresharedKey[:])}
		if sp.PresharedKeyID != "" {
			sp.PresharedKey = append([]byte(nil), p.PresharedKey[:]...)
		}
		if !p.LastHandshakeTime.IsZero() && p.LastHandshakeTime.Unix() == 0 {
			sp.LastHandshake = time.Time{}
		}
		if p.Endpoint != nil {
			if ap := p.Endpoint.AddrPort(); ap.IsValid() {
				sp.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			}
		}
		for _, ip := range p.AllowedIPs {
			if pfx, ok := prefixOf(ip); ok {
				sp.AllowedIPs = append(sp.AllowedIPs, pfx)
			}
		}
		w.Peers = append(w.Peers, sp)
	}
	return w
}

func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	a = a.Unmap()
	return netip.PrefixFrom(a, ones), true
}

// ReadWireGuardKey reads a private or preshared key file as wg(8) writes
// it (base64, one line) and returns the key.
func ReadWireGuardKey(path string) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return wgtypes.Key{}, err
	}
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("%s: not a WireGuard key (base64, 32 bytes, as wg genkey and wg genpsk write them): %w", path, err)
	}
	return k, nil
}

// wireGuardConfig turns a desired configuration into wgctrl's: the peers
// replace the device's, each peer's allowed IPs replace its own. The
// private key comes from PrivateKeyFile, or PrivateKey (an undo putting
// an observed key back); with neither the device keeps its key.
func wireGuardConfig(w *state.WireGuard) (wgtypes.Config, error) {
	cfg := wgtypes.Config{ReplacePeers: true}
	switch {
	case w.PrivateKeyFile != "":
		k, err := ReadWireGuardKey(w.PrivateKeyFile)
		if err != nil {
			return cfg, fmt.Errorf("private key: %w", err)
		}
		if w.PublicKey != "" && k.PublicKey().String() != w.PublicKey {
			return cfg, fmt.Errorf("private key file %s changed since the plan was made", w.PrivateKeyFile)
		}
		cfg.PrivateKey = &k
	case len(w.PrivateKey) == wgtypes.KeyLen:
		k := wgtypes.Key(w.PrivateKey)
		cfg.PrivateKey = &k
	}
	if w.ListenPort != 0 {
		port := w.ListenPort
		cfg.ListenPort = &port
	}
	mark := int(w.FwMark)
	cfg.FirewallMark = &mark
	for _, p := range w.Peers {
		pk, err := wgtypes.ParseKey(p.PublicKey)
		if err != nil {
			return cfg, fmt.Errorf("peer %q: %w", p.PublicKey, err)
		}
		pc := wgtypes.PeerConfig{PublicKey: pk, ReplaceAllowedIPs: true}
		if p.Endpoint.IsValid() {
			pc.Endpoint = net.UDPAddrFromAddrPort(p.Endpoint)
		}
		ka := time.Duration(p.Keepalive) * time.Second
		pc.PersistentKeepaliveInterval = &ka
		// Always set: a peer without one gets the zero key, which removes
		// a preshared key the device had.
		var psk wgtypes.Key
		switch {
		case p.PresharedKeyFile != "":
			k, err := ReadWireGuardKey(p.PresharedKeyFile)
			if err != nil {
				return cfg, fmt.Errorf("peer %s: preshared key: %w", p.PublicKey, err)
			}
			if p.PresharedKeyID != "" && state.KeyID(k[:]) != p.PresharedKeyID {
				return cfg, fmt.Errorf("preshared key file %s changed since the plan was made", p.PresharedKeyFile)
			}
			psk = k
		case len(p.PresharedKey) == wgtypes.KeyLen:
			psk = wgtypes.Key(p.PresharedKey)
		}
		pc.PresharedKey = &psk
		for _, a := range p.AllowedIPs {
			pc.AllowedIPs = append(pc.AllowedIPs, net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())})
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	return cfg, nil
}

// configureWireGuard sets a WireGuard device's key, port, mark and peers
// in the handle's namespace.
func (x *executor) configureWireGuard(l *state.Link) error {
	if l.WireGuard == nil {
		return nil
	}
	cfg, err := wireGuardConfig(l.WireGuard)
	if err != nil {
		return err
	}
	return inNetns(x.h.ns, func() error {
		c, err := wgctrl.New()
		if err != nil {
			return fmt.Errorf("wireguard: %w", err)
		}
		defer c.Close()
		if err := c.ConfigureDevice(l.Name, cfg); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("configure wireguard device %s: no such WireGuard device (no kernel device, no %s/%s.sock)", l.Name, WireGuardSocketDir, l.Name)
			}
			return fmt.Errorf("configure wireguard device %s: %w", l.Name, err)
		}
		return nil
	})
}
