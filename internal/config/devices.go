package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/tunroute/tunroute/internal/state"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DeviceTypes are the devices a config can declare under `devices`.
var DeviceTypes = []string{"wireguard", "xfrm", "vti", "vti6", "gre", "ip6gre"}

// Device is a tunnel device the config creates and owns: route-based
// IPsec (xfrm, vti, vti6), GRE (gre, ip6gre) or WireGuard.
type Device struct {
	Name string
	Type string
	// Addrs are the device's addresses, with their prefix length.
	Addrs []netip.Prefix
	// Local and Remote are a vti's or gre's outer addresses.
	Local, Remote netip.Addr
	// IKey and OKey: a gre's keys, or a vti's marks.
	IKey, OKey uint32
	TTL        uint8
	// IfID is an xfrm interface's id (swanctl's if_id_in/if_id_out).
	IfID uint32
	// Dev is the underlying device (xfrm's dev, a tunnel's dev).
	Dev string
	// DisablePolicy is the device's disable_policy sysctl (vti: default on).
	DisablePolicy bool
	WireGuard     *WireGuardDevice

	positions
}

// WireGuardDevice is a WireGuard device's own settings.
type WireGuardDevice struct {
	// PrivateKeyFile is absolute; PublicKey is derived from it at load.
	PrivateKeyFile string
	PublicKey      string
	ListenPort     int
	FwMark         uint32
	Peers          []WireGuardPeer
	// Userspace: wireguard-go (or another userspace implementation)
	// creates the device; tunroute configures it but neither creates nor
	// deletes it.
	Userspace bool
	// Routing is wg-quick's: the peers' allowed IPs are routed into the
	// device; a /0 makes a full tunnel (a table with the default route,
	// a rule `not fwmark MARK lookup TABLE`, a rule `lookup main
	// suppress_prefixlength 0`, and the guard against packets to the
	// tunnel address arriving by another interface).
	Routing bool
	// Table holds the full tunnel's default routes (and, when given, the
	// other allowed IPs; else they go to main); 0: allocated.
	Table uint32
	// TableGiven: the table was named, not `auto`.
	TableGiven bool
	// Priority of the suppress_prefixlength rule; the fwmark rule is the
	// next one. 0: DefaultWireGuardPriority (minus 2 per earlier device).
	Priority uint32
}

// DefaultWireGuardPriority is the priority of the first full-tunnel
// WireGuard device's rules: after the identities' and selectors' rules,
// before main (32766), like wg-quick's.
const DefaultWireGuardPriority = 32000

// WireGuardPeer is one peer of a WireGuard device.
type WireGuardPeer struct {
	PublicKey  string
	Endpoint   netip.AddrPort
	AllowedIPs []netip.Prefix
	Keepalive  int
	// PresharedKeyFile (absolute) and the key's identity (state.KeyID).
	PresharedKeyFile string
	PresharedKeyID   string
}

// Device returns the device called name, or nil.
func (c *Config) Device(name string) *Device {
	return byName(c.Devices, name)
}

var deviceKeys = map[string][]string{
	"wireguard": {"private_key_file", "listen_port", "fwmark", "peers", "userspace", "table", "priority"},
	"xfrm":      {"if_id", "dev", "disable_policy"},
	"vti":       {"local", "remote", "key", "ikey", "okey", "dev", "disable_policy"},
	"vti6":      {"local", "remote", "key", "ikey", "okey", "dev", "disable_policy"},
	"gre":       {"local", "remote", "key", "ikey", "okey", "ttl", "dev", "disable_policy"},
	"ip6gre":    {"local", "remote", "key", "ikey", "okey", "ttl", "dev", "disable_policy"},
}

func (d *decoder) devices(v node) error {
	items, err := v.seqOnly()
	if err != nil {
		return err
	}
	for _, it := range items {
		// Read the type first: it decides which keys are allowed.
		pre, err := it.mapping(allDeviceKeys()...)
		if err != nil {
			return err
		}
		typ, err := requiredString(pre, "type")
		if err != nil {
			return err
		}
		if !contains(DeviceTypes, typ) {
			return pre.at("type").Errorf("unknown device type %q; expected one of: %s", typ, strings.Join(DeviceTypes, ", "))
		}
		m, err := it.mapping(append([]string{"name", "type", "address"}, deviceKeys[typ]...)...)
		if err != nil {
			return err
		}
		dev := &Device{Type: typ, positions: m.at, DisablePolicy: typ == "vti" || typ == "vti6"}
		if dev.Name, err = requiredString(m, "name"); err != nil {
			return err
		}
		if err := checkDevice(m.at("name"), dev.Name); err != nil {
			return err
		}
		if d.cfg.Device(dev.Name) != nil {
			return m.at("name").Errorf("device %q is declared twice", dev.Name)
		}
		for _, x := range d.cfg.VXLANs {
			if x.Name == dev.Name {
				return m.at("name").Errorf("%q is also a vxlan device", dev.Name)
			}
		}
		if _, ok := m.get("address"); ok {
			if dev.Addrs, err = hostPrefixes(m, "address"); err != nil {
				return err
			}
		}
		if typ == "wireguard" {
			if dev.WireGuard, err = d.wireGuard(m); err != nil {
				return err
			}
		} else if err := d.tunnel(m, dev); err != nil {
			return err
		}
		d.cfg.Devices = append(d.cfg.Devices, dev)
	}
	return nil
}

func allDeviceKeys() []string {
	keys := []string{"name", "type", "address"}
	for _, t := range DeviceTypes {
		for _, k := range deviceKeys[t] {
			if !contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// tunnel reads the settings of an xfrm, vti(6) or (ip6)gre device.
func (d *decoder) tunnel(m *mapping, dev *Device) error {
	v6 := dev.Type == "vti6" || dev.Type == "ip6gre"
	err := scalarsInto(m, []keyed[netip.Addr]{{"local", &dev.Local}, {"remote", &dev.Remote}}, func(n node, s string) (netip.Addr, error) {
		a, err := parseAddr(n.pos, s)
		if err == nil && a.Is6() != v6 {
			want := "an IPv4"
			if v6 {
				want = "an IPv6"
			}
			return a, n.pos.Errorf("%s: a %s device's endpoints are %s address", s, dev.Type, want)
		}
		return a, err
	})
	if err != nil {
		return err
	}
	if (dev.Type == "gre" || dev.Type == "ip6gre") && !dev.Remote.IsValid() {
		return m.at("remote").Errorf("missing: the other end's address")
	}
	if n, ok := m.get("key"); ok {
		if _, ok := m.get("ikey"); ok {
			return m.at("ikey").Errorf("give either key or ikey/okey")
		}
		if _, ok := m.get("okey"); ok {
			return m.at("okey").Errorf("give either key or ikey/okey")
		}
		k, err := uintValue(n, 1, 1<<32-1)
		if err != nil {
			return err
		}
		dev.IKey, dev.OKey = uint32(k), uint32(k)
	}
	for _, key := range []string{"ikey", "okey"} {
		if n, ok := m.get(key); ok {
			k, err := uintValue(n, 1, 1<<32-1)
			if err != nil {
				return err
			}
			if key == "ikey" {
				dev.IKey = uint32(k)
			} else {
				dev.OKey = uint32(k)
			}
		}
	}
	if err := optUint(m, "ttl", 1, 255, &dev.TTL); err != nil {
		return err
	}
	if dev.Type == "xfrm" {
		if err := requiredUint(m, "if_id", 1, 1<<32-1, "the interface id the IPsec SAs name (swanctl if_id_in/if_id_out), 1-4294967295", &dev.IfID); err != nil {
			return err
		}
	}
	if err := scalarsInto(m, []keyed[string]{{"dev", &dev.Dev}}, deviceScalar); err != nil {
		return err
	}
	if n, ok := m.get("disable_policy"); ok {
		var err error
		if dev.DisablePolicy, err = boolValue(n); err != nil {
			return err
		}
	}
	return nil
}

// wireGuard reads a WireGuard device's settings. The private key file
// is read now, so that a wrong path or a key anyone may read is an error
// before anything changes; only its public key is kept.
func (d *decoder) wireGuard(m *mapping) (*WireGuardDevice, error) {
	w := &WireGuardDevice{}
	path, k, err := d.secretKey(m, "private_key_file", "private key", "wg genkey")
	if err != nil {
		return nil, err
	}
	w.PrivateKeyFile, w.PublicKey = path, k.PublicKey().String()
	if err := optUint(m, "listen_port", 1, 65535, &w.ListenPort); err != nil {
		return nil, err
	}
	if n, ok := m.get("fwmark"); ok {
		s, err := n.scalar()
		if err != nil {
			return nil, err
		}
		if s != "off" {
			f, err := uintValue(n, 1, 1<<32-1)
			if err != nil {
				return nil, err
			}
			w.FwMark = uint32(f)
		}
	}
	if n, ok := m.get("userspace"); ok {
		if w.Userspace, err = boolValue(n); err != nil {
			return nil, err
		}
	}
	if n, ok := m.get("table"); ok {
		s, err := n.scalar()
		if err != nil {
			return nil, err
		}
		switch s {
		case "off":
		case "auto":
			w.Routing = true
		default:
			if w.Table, err = d.table(n, true); err != nil {
				return nil, err
			}
			w.Routing, w.TableGiven = true, true
		}
	}
	if n, ok := m.get("priority"); ok {
		if !w.Routing {
			return nil, n.pos.Errorf("priority is for the rules of a routed device: give `table: auto` (or a table)")
		}
		p, err := uintValue(n, 1, 32764)
		if err != nil {
			return nil, err
		}
		w.Priority = uint32(p)
	}
	if n, ok := m.get("peers"); ok {
		items, err := n.seqOnly()
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, it := range items {
			p, err := d.wireGuardPeer(it)
			if err != nil {
				return nil, err
			}
			if seen[p.PublicKey] {
				return nil, it.pos.Errorf("peer %s is listed twice", p.PublicKey)
			}
			seen[p.PublicKey] = true
			w.Peers = append(w.Peers, p)
		}
	}
	return w, nil
}

func (d *decoder) wireGuardPeer(it node) (WireGuardPeer, error) {
	var p WireGuardPeer
	m, err := it.mapping("public_key", "endpoint", "allowed_ips", "persistent_keepalive", "preshared_key_file")
	if err != nil {
		return p, err
	}
	s, err := requiredString(m, "public_key")
	if err != nil {
		return p, err
	}
	k, err := wgtypes.ParseKey(s)
	if err != nil {
		return p, m.at("public_key").Errorf("%q is not a WireGuard public key (base64, 32 bytes)", s)
	}
	p.PublicKey = k.String()
	if n, ok := m.get("endpoint"); ok {
		s, err := n.scalar()
		if err != nil {
			return p, err
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
			return p, n.pos.Errorf("%q is not ADDR:PORT (IPv6 in brackets; host names are not resolved: give the address)", s)
		}
		p.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if _, err := optPrefixes(m, "allowed_ips", &p.AllowedIPs); err != nil {
		return p, err
	}
	if _, ok := m.get("preshared_key_file"); ok {
		path, k, err := d.secretKey(m, "preshared_key_file", "preshared key", "wg genpsk")
		if err != nil {
			return p, err
		}
		p.PresharedKeyFile, p.PresharedKeyID = path, state.KeyID(k[:])
	}
	if n, ok := m.get("persistent_keepalive"); ok {
		s, err := n.scalar()
		if err != nil {
			return p, err
		}
		if s != "off" {
			ka, err := uintValue(n, 1, 65535)
			if err != nil {
				return p, err
			}
			p.Keepalive = int(ka)
		}
	}
	return p, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

// secretKey reads a key file named under key (relative to the config's
// directory): it must exist, not be readable by anyone, and hold a
// base64 WireGuard key (what, as tool writes it).
func (d *decoder) secretKey(m *mapping, key, what, tool string) (string, wgtypes.Key, error) {
	name, err := requiredString(m, key)
	if err != nil {
		return "", wgtypes.Key{}, err
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), name)
	}
	pos := m.at(key)
	fi, err := os.Stat(path)
	if err != nil {
		return "", wgtypes.Key{}, pos.Errorf("cannot read the %s: %v", what, unwrapPath(err))
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", wgtypes.Key{}, pos.Errorf("%s can be read by anyone; chmod 600 it (a %s is a secret)", path, what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", wgtypes.Key{}, pos.Errorf("cannot read the %s: %v", what, unwrapPath(err))
	}
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return "", wgtypes.Key{}, pos.Errorf("%s does not hold a WireGuard %s (base64, as %s writes it)", path, what, tool)
	}
	return path, k, nil
}
