package lab

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Key is a Curve25519 key as WireGuard uses it.
type Key [32]byte

// GeneratePrivateKey returns a new random, clamped private key.
func GeneratePrivateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, err
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Public returns the public key of a private key.
func (k Key) Public() Key {
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// Only possible for a low-order point result, which a basepoint
		// multiplication cannot produce.
		panic(err)
	}
	var p Key
	copy(p[:], pub)
	return p
}

// Hex is the key in the UAPI's hexadecimal form.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// WGPeer is one peer of a WireGuard device.
type WGPeer struct {
	PublicKey  Key
	Endpoint   netip.AddrPort // zero: none (the peer must connect first)
	AllowedIPs []netip.Prefix
	Keepalive  int // persistent keepalive, seconds; 0 off
}

// WGConfig describes a WireGuard device run in-process inside a namespace.
type WGConfig struct {
	NS         string // namespace name
	Name       string // interface name
	PrivateKey Key
	ListenPort int // 0: random
	Addrs      []netip.Prefix
	Peers      []WGPeer
}

// WG is a running wireguard-go device that lives in a lab namespace.
type WG struct {
	Config WGConfig
	dev    *device.Device
}

// StartWireGuard creates a TUN device in cfg.NS, runs wireguard-go on it in
// this process, configures it through the UAPI, brings it up and gives the
// link its addresses. The TUN device and the UDP socket are created on a
// thread inside the namespace, so the tunnel's encapsulated traffic leaves
// from that namespace.
func StartWireGuard(cfg WGConfig, logf func(string, ...any)) (*WG, error) {
	h, err := netns.GetFromName(cfg.NS)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", cfg.NS, err)
	}
	// The handle stays open for the device's life: nsBind and nsTUN use it.
	w := &WG{Config: cfg}
	if logf == nil {
		logf = device.DiscardLogf
	}
	logger := &device.Logger{Verbosef: device.DiscardLogf, Errorf: func(f string, a ...any) {
		logf(cfg.NS+"/"+cfg.Name+": "+f, a...)
	}}
	err = doIn(h, cfg.NS, func() error {
		t, err := tun.CreateTUN(cfg.Name, WGMTU)
		if err != nil {
			return fmt.Errorf("create TUN %s: %w", cfg.Name, err)
		}
		bind := &nsBind{Bind: conn.NewDefaultBind(), ns: h, nsName: cfg.NS}
		w.dev = device.NewDevice(&nsTUN{Device: t, ns: h, nsName: cfg.NS}, bind, logger)
		if err := w.dev.IpcSet(cfg.uapi()); err != nil {
			w.dev.Close()
			return fmt.Errorf("configure %s: %w", cfg.Name, err)
		}
		// Up opens the UDP socket synchronously (Device.Up -> BindUpdate ->
		// Bind.Open), here, on this thread.
		if err := w.dev.Up(); err != nil {
			w.dev.Close()
			return fmt.Errorf("up %s: %w", cfg.Name, err)
		}
		// Check that it did.
		if bind.opened.Load() == 0 {
			w.dev.Close()
			return fmt.Errorf("up %s: UDP socket not open after Up", cfg.Name)
		}
		return nil
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netns %s: wireguard: %w", cfg.NS, err)
	}
	go func() { <-w.dev.Wait(); h.Close() }()

	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("netlink in netns %s: %w", cfg.NS, err)
	}
	defer nh.Close()
	if err := configureLink(nh, cfg.NS, cfg.Name, cfg.Addrs); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

func (c *WGConfig) uapi() string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", c.PrivateKey.Hex())
	if c.ListenPort != 0 {
		fmt.Fprintf(&b, "listen_port=%d\n", c.ListenPort)
	}
	b.WriteString("replace_peers=true\n")
	for _, p := range c.Peers {
		b.WriteString(p.uapi())
	}
	return b.String()
}

func (p *WGPeer) uapi() string {
	var b strings.Builder
	fmt.Fprintf(&b, "public_key=%s\n", p.PublicKey.Hex())
	if p.Endpoint.IsValid() {
		fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
	}
	b.WriteString("replace_allowed_ips=true\n")
	for _, a := range p.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", a)
	}
	if p.Keepalive > 0 {
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", p.Keepalive)
	}
	return b.String()
}

// Device is the wireguard-go device (for IpcHandle, IpcGet, IpcSet).
func (w *WG) Device() *device.Device { return w.dev }

// Close stops the device; its TUN link disappears with it.
func (w *WG) Close() { w.dev.Close() }

// Stats returns the device's peers as the UAPI reports them.
func (w *WG) Stats() ([]PeerStats, error) {
	s, err := w.dev.IpcGet()
	if err != nil {
		return nil, err
	}
	return ParseUAPI(s)
}

// PeerStats is what the UAPI tells about one peer.
type PeerStats struct {
	PublicKey     string
	Endpoint      string
	LastHandshake time.Time // zero: never
	RxBytes       uint64
	TxBytes       uint64
}

// ParseUAPI reads the peers out of a UAPI "get" answer.
func ParseUAPI(s string) ([]PeerStats, error) {
	var peers []PeerStats
	var sec, nsec int64
	flush := func() {
		if len(peers) > 0 && (sec != 0 || nsec != 0) {
			peers[len(peers)-1].LastHandshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "public_key":
			flush()
			peers = append(peers, PeerStats{PublicKey: v})
		case "errno":
			if v != "0" {
				return nil, fmt.Errorf("uapi: errno=%s", v)
			}
		}
		if len(peers) == 0 {
			continue
		}
		p := &peers[len(peers)-1]
		switch k {
		case "endpoint":
			p.Endpoint = v
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			p.RxBytes, err = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			p.TxBytes, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("uapi: %s=%s: %w", k, v, err)
		}
	}
	flush()
	return peers, sc.Err()
}

// nsBind opens its sockets inside the namespace whoever calls Open.
// wireguard-go opens the bind from Device.Up and also from its TUN event
// goroutine, which runs in the host's namespace: it calls Device.Up when the
// TUN reports "up" (on this kernel the TUN reports "up" as soon as it is
// created, racing with our own Up) and would reopen the bind after a
// reported down/up. Without the wrapper the socket could land in the host's
// namespace and the tunnel would leave through the host's uplink.
//
// The price: wireguard-go starts its sticky-socket route listener only for
// an unwrapped *conn.StdNetBind, so cached source addresses are not
// forgotten on route changes. The lab's endpoints have one address each,
// which makes that irrelevant here.
type nsBind struct {
	conn.Bind
	ns     netns.NsHandle
	nsName string
	opened atomic.Int32 // successful Opens
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = doIn(b.ns, b.nsName, func() error {
		var e error
		fns, actual, e = b.Bind.Open(port)
		return e
	})
	if err == nil {
		b.opened.Add(1)
	}
	return fns, actual, err
}

// nsTUN asks the MTU inside the namespace: the TUN reads it with an ioctl
// on a fresh socket by interface name, and the device calls MTU from its
// event goroutine (unwrapped, that fails with "no such device", or reads a
// host interface of the same name).
type nsTUN struct {
	tun.Device
	ns     netns.NsHandle
	nsName string
}

func (t *nsTUN) MTU() (mtu int, err error) {
	err = doIn(t.ns, t.nsName, func() error {
		var e error
		mtu, e = t.Device.MTU()
		return e
	})
	return mtu, err
}
