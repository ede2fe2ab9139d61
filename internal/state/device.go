package state

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Device kinds tunroute creates besides veth and vxlan: route-based IPsec
// (xfrm, vti, vti6), GRE (gre, ip6gre) and WireGuard.
const (
	KindXFRM      = "xfrm"
	KindVTI       = "vti"
	KindVTI6      = "vti6"
	KindGRE       = "gre"
	KindIP6GRE    = "ip6gre"
	KindWireGuard = "wireguard"
)

// TunnelKinds are the kinds whose settings live in Link.Tunnel.
var TunnelKinds = []string{KindXFRM, KindVTI, KindVTI6, KindGRE, KindIP6GRE}

// IsTunnelKind reports whether kind keeps its settings in Link.Tunnel.
func IsTunnelKind(kind string) bool { return slices.Contains(TunnelKinds, kind) }

// Tunnel is the configuration of a point-to-point IP tunnel device: the
// endpoints and keys of a gre/ip6gre, the endpoints and marks of a
// vti/vti6, the interface id of an xfrm interface.
type Tunnel struct {
	Local  netip.Addr `json:"local,omitzero"`
	Remote netip.Addr `json:"remote,omitzero"`
	// IKey and OKey are GRE keys (gre, ip6gre) or the marks of the
	// IPsec policies whose traffic a VTI device carries (vti, vti6).
	IKey uint32 `json:"ikey,omitempty"`
	OKey uint32 `json:"okey,omitempty"`
	// TTL of the outer header (gre, ip6gre's hop limit); 0 inherits.
	TTL uint8 `json:"ttl,omitempty"`
	// IfID is an xfrm interface's id: the SAs and policies with the same
	// if_id (swanctl's if_id_in/if_id_out) send their traffic through it.
	IfID uint32 `json:"if_id,omitempty"`
	// Dev is the underlying device (xfrm's IFLA_XFRM_LINK, a tunnel's
	// IFLA_*_LINK); "" for none.
	Dev string `json:"dev,omitempty"`
	// DisablePolicy is net.ipv4.conf.DEV.disable_policy of the device
	// (strongSwan's route-based VPN guide sets it on a VTI so that the
	// decrypted packets are not checked against the policies again).
	DisablePolicy bool `json:"disable_policy,omitempty"`
}

// Satisfies reports whether the observed tunnel o is configured as t
// (desired) asks. A TTL of 0 in t accepts the kernel's default, which
// differs between kinds (gre inherits, ip6gre takes a hop limit of 64).
func (t *Tunnel) Satisfies(o *Tunnel) bool {
	if t == nil || o == nil {
		return t == o
	}
	x := *o
	if t.TTL == 0 {
		x.TTL = 0
	}
	return *t == x
}

// WireGuard is a WireGuard device's configuration (the kernel's, through
// its generic netlink API, or a userspace implementation's through its
// UAPI socket). The private key itself is never part of a State: a
// desired state names the file it is read from at apply time, and both
// carry the public key, by which they are compared.
type WireGuard struct {
	// PublicKey is the device's public key, base64 as wg(8) prints it.
	PublicKey string `json:"public_key,omitempty"`
	// PrivateKeyFile is where a desired state's private key is read from
	// when the device is configured; empty in an observed state.
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	// PrivateKey is an observed device's key, kept in memory only so that
	// a rollback can put it back; never serialised.
	PrivateKey []byte `json:"-"`
	// ListenPort: 0 in a desired state means any port.
	ListenPort int      `json:"listen_port,omitempty"`
	FwMark     uint32   `json:"fwmark,omitempty"`
	Peers      []WGPeer `json:"peers,omitempty"`
}

// WGPeer is one peer of a WireGuard device.
type WGPeer struct {
	PublicKey string `json:"public_key"`
	// Endpoint: zero in a desired state means the peer connects first
	// (its endpoint is learnt, not configured).
	Endpoint   netip.AddrPort `json:"endpoint,omitzero"`
	AllowedIPs []netip.Prefix `json:"allowed_ips,omitempty"`
	// Keepalive is the persistent keepalive interval in seconds; 0 off.
	Keepalive int `json:"persistent_keepalive,omitempty"`
	// PresharedKeyFile is where a desired peer's preshared key is read
	// from when the device is configured ("" none).
	PresharedKeyFile string `json:"preshared_key_file,omitempty"`
	// PresharedKeyID identifies the preshared key without showing it (a
	// hash; "" for none); desired and observed are compared by it. Like
	// PresharedKey (an observed key, kept for a rollback), it stays in
	// memory and is never serialised.
	PresharedKeyID string `json:"-"`
	PresharedKey   []byte `json:"-"`
	// LastHandshake is when the last handshake completed (observed
	// state only; zero: never). It is health, not configuration.
	LastHandshake time.Time `json:"latest_handshake,omitzero"`
	RxBytes       int64     `json:"rx_bytes,omitempty"`
	TxBytes       int64     `json:"tx_bytes,omitempty"`
}

// Satisfies reports whether the observed configuration o is what w
// (desired) asks for: the same key, the same peers in any order with the
// same allowed IPs in any order, keepalive, fwmark, and the port and
// endpoints where w gives them (a random port and a learnt endpoint are
// fine when none was asked for).
func (w *WireGuard) Satisfies(o *WireGuard) bool {
	if w == nil || o == nil {
		return w == o
	}
	if w.PublicKey != o.PublicKey || w.FwMark != o.FwMark || len(w.Peers) != len(o.Peers) {
		return false
	}
	if w.ListenPort != 0 && w.ListenPort != o.ListenPort {
		return false
	}
	have := make(map[string]*WGPeer, len(o.Peers))
	for i := range o.Peers {
		have[o.Peers[i].PublicKey] = &o.Peers[i]
	}
	for i := range w.Peers {
		d := &w.Peers[i]
		p, ok := have[d.PublicKey]
		if !ok || d.Keepalive != p.Keepalive || (d.Endpoint.IsValid() && d.Endpoint != p.Endpoint) || d.PresharedKeyID != p.PresharedKeyID {
			return false
		}
		if !samePrefixes(d.AllowedIPs, p.AllowedIPs) {
			return false
		}
	}
	return true
}

func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	x := slices.Clone(a)
	y := slices.Clone(b)
	cmp := func(p, q netip.Prefix) int {
		if c := p.Addr().Compare(q.Addr()); c != 0 {
			return c
		}
		return p.Bits() - q.Bits()
	}
	slices.SortFunc(x, cmp)
	slices.SortFunc(y, cmp)
	return slices.Equal(x, y)
}

// SameDevice reports whether observed link o has the device settings l
// (desired) asks for: its tunnel or WireGuard configuration. Links of
// other kinds have none tunroute changes in place.
func (l *Link) SameDevice(o *Link) bool {
	if l.Tunnel != nil && !l.Tunnel.Satisfies(o.Tunnel) {
		return false
	}
	if l.WireGuard != nil && !l.WireGuard.Satisfies(o.WireGuard) {
		return false
	}
	return true
}

// DeviceString renders a link's device settings in ip-link and wg words,
// for plans ("local 198.51.100.1 remote 203.0.113.1 key 5").
func (l *Link) DeviceString() string {
	var parts []string
	if t := l.Tunnel; t != nil {
		if t.Local.IsValid() {
			parts = append(parts, "local "+t.Local.String())
		}
		if t.Remote.IsValid() {
			parts = append(parts, "remote "+t.Remote.String())
		}
		switch {
		case l.Kind == KindGRE || l.Kind == KindIP6GRE:
			if t.IKey != 0 && t.IKey == t.OKey {
				parts = append(parts, fmt.Sprintf("key %d", t.IKey))
			} else {
				if t.IKey != 0 {
					parts = append(parts, fmt.Sprintf("ikey %d", t.IKey))
				}
				if t.OKey != 0 {
					parts = append(parts, fmt.Sprintf("okey %d", t.OKey))
				}
			}
		case t.IKey != 0 || t.OKey != 0:
			parts = append(parts, fmt.Sprintf("ikey %#x okey %#x", t.IKey, t.OKey))
		}
		if t.TTL != 0 {
			parts = append(parts, fmt.Sprintf("ttl %d", t.TTL))
		}
		if l.Kind == KindXFRM {
			parts = append(parts, fmt.Sprintf("if_id %#x", t.IfID))
		}
		if t.Dev != "" {
			parts = append(parts, "dev "+t.Dev)
		}
		if t.DisablePolicy {
			parts = append(parts, "disable_policy")
		}
	}
	if w := l.WireGuard; w != nil {
		if w.PublicKey != "" {
			parts = append(parts, "public-key "+w.PublicKey)
		}
		if w.ListenPort != 0 {
			parts = append(parts, fmt.Sprintf("listen-port %d", w.ListenPort))
		}
		if w.FwMark != 0 {
			parts = append(parts, fmt.Sprintf("fwmark %#x", w.FwMark))
		}
		for _, p := range w.Peers {
			s := "peer " + p.PublicKey
			if p.Endpoint.IsValid() {
				s += " endpoint " + p.Endpoint.String()
			}
			if len(p.AllowedIPs) > 0 {
				ips := make([]string, len(p.AllowedIPs))
				for i, a := range p.AllowedIPs {
					ips[i] = a.String()
				}
				s += " allowed-ips " + strings.Join(ips, ",")
			}
			if p.Keepalive != 0 {
				s += fmt.Sprintf(" persistent-keepalive %d", p.Keepalive)
			}
			if p.PresharedKeyFile != "" {
				s += " preshared-key " + p.PresharedKeyFile
			} else if p.PresharedKeyID != "" {
				s += " preshared-key (set)"
			}
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// KeyID identifies a secret key without showing it: the first 16 bytes
// of its SHA-256, in hex; "" for an all-zero key (none).
func KeyID(key []byte) string {
	zero := true
	for _, b := range key {
		if b != 0 {
			zero = false
		}
	}
	if zero {
		return ""
	}
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:16])
}
