package devtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/state"
)

// wgWorld is the lab with a VPN server running wireguard-go as usual and
// a client whose WireGuard device (wireguard-go over TUN, with a UAPI
// socket) has a throwaway key and no peer: tunroute configures it.
type wgWorld struct {
	lab       *lab.Lab
	client    string // namespace
	dev       string // the client's WireGuard device
	dir       string // config and key files
	serverPub lab.Key
	clientKey lab.Key
	server    *lab.WG
	clientWG  *lab.WG
}

func newWGWorld(t *testing.T, short string) *wgWorld {
	t.Helper()
	needRoot(t)
	w := &wgWorld{lab: lab.New(fmt.Sprintf("tr-dev%d%s-", os.Getpid(), short)), dir: t.TempDir()}
	w.lab.RunDir = w.dir
	w.client = w.lab.NS(lab.Client)
	// Userspace devices share /var/run/wireguard host-wide: a name of
	// this test process's own.
	w.dev = fmt.Sprintf("trdev%d%s", os.Getpid()%1000000, short)
	if len(w.dev) > 15 {
		t.Fatalf("device name %s too long", w.dev)
	}
	if err := w.lab.Build(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.lab.Destroy(); err != nil {
			t.Error(err)
		}
	})
	echo, err := lab.ListenEcho(w.lab.NS(lab.Inet), lab.EchoPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Close)
	spriv, _ := lab.GeneratePrivateKey()
	cpriv, _ := lab.GeneratePrivateKey()
	throwaway, _ := lab.GeneratePrivateKey()
	w.serverPub, w.clientKey = spriv.Public(), cpriv
	w.server, err = lab.StartWireGuard(lab.WGConfig{NS: w.lab.NS(lab.VPNServer), Name: lab.WGDevice, PrivateKey: spriv,
		ListenPort: lab.WGPort, Addrs: []netip.Prefix{lab.ServerWG4, lab.ServerWG6},
		Peers: []lab.WGPeer{{PublicKey: cpriv.Public(),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(lab.ClientWG4.Addr(), 32), netip.PrefixFrom(lab.ClientWG6.Addr(), 128)}}}}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.server.Close)
	w.clientWG, err = lab.StartWireGuard(lab.WGConfig{NS: w.client, Name: w.dev, PrivateKey: throwaway}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.clientWG.Close)
	serveUAPI(t, w.clientWG)
	key := base64.StdEncoding.EncodeToString(cpriv[:]) + "\n"
	if err := os.WriteFile(filepath.Join(w.dir, "client.key"), []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func b64(k lab.Key) string { return base64.StdEncoding.EncodeToString(k[:]) }

// device is the config's devices section for the client's WireGuard.
func (w *wgWorld) device(keepalive int) string {
	return fmt.Sprintf(`devices:
  - name: %s
    type: wireguard
    userspace: true
    private_key_file: client.key
    address: [%s, %s]
    peers:
      - public_key: %s
        endpoint: %s:%d
        allowed_ips: [0.0.0.0/0, "::/0"]
        persistent_keepalive: %d
`, w.dev, lab.ClientWG4, lab.ClientWG6, b64(w.serverPub), lab.ServerEth4.Addr(), lab.WGPort, keepalive)
}

func (w *wgWorld) write(t *testing.T, cfg string) string {
	t.Helper()
	path := filepath.Join(w.dir, "tunroute.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// observedWG reads the client device's WireGuard settings as tunroute
// sees them (its snapshot).
func (w *wgWorld) observedWG(t *testing.T) *state.WireGuard {
	t.Helper()
	out := mustTR(t, 0, "snapshot", "--netns", w.client)
	var s state.State
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, out)
	}
	for _, l := range s.Links {
		if l.Name == w.dev {
			return l.WireGuard
		}
	}
	t.Fatalf("snapshot has no %s:\n%s", w.dev, out)
	return nil
}

func (w *wgWorld) waitHandshake(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), lab.HandshakeTimeout)
	defer cancel()
	for {
		if wg := w.observedWG(t); wg != nil && len(wg.Peers) == 1 && !wg.Peers[0].LastHandshake.IsZero() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no handshake through the device tunroute configured; observed %+v", w.observedWG(t))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestWireGuardNativeDevice: tunroute configures a WireGuard device from
// the config (key file, peer, endpoint, allowed IPs, keepalive), the
// tunnel comes up and carries traffic, a second plan is empty, a changed
// setting is changed in place, and down leaves the daemon's device.
func TestWireGuardNativeDevice(t *testing.T) {
	w := newWGWorld(t, "n")
	cfg := w.device(15) + fmt.Sprintf(`identities:
  - {name: vpn, device: %s, address: %s, gateway: none}
routes:
  - {to: %s, via: vpn}
`, w.dev, lab.ClientWG4.Addr(), lab.InetEth4.Masked())
	path := w.write(t, cfg)
	out := mustTR(t, 2, "plan", "-c", path, "--netns", w.client)
	if !strings.Contains(out, "~ link "+w.dev) || !strings.Contains(out, "peer "+b64(w.serverPub)) {
		t.Fatalf("plan does not configure %s:\n%s", w.dev, out)
	}
	mustTR(t, 0, "apply", "-c", path, "--netns", w.client)
	wg := w.observedWG(t)
	if wg.PublicKey != b64(w.clientKey.Public()) || len(wg.Peers) != 1 || wg.Peers[0].Keepalive != 15 ||
		wg.Peers[0].Endpoint != netip.AddrPortFrom(lab.ServerEth4.Addr(), lab.WGPort) || len(wg.Peers[0].AllowedIPs) != 2 {
		t.Fatalf("device configured as %+v", wg)
	}
	w.waitHandshake(t)
	var snap state.State
	if err := json.Unmarshal([]byte(mustTR(t, 0, "snapshot", "--netns", w.client)), &snap); err != nil {
		t.Fatal(err)
	}
	health := state.WireGuardHealth(&snap, time.Now())
	if len(health) != 1 || health[0].Status != "up" || health[0].Age > time.Minute {
		t.Fatalf("health after the handshake: %v", health)
	}
	seen, err := lab.Probe(context.Background(), w.client, netip.Addr{}, netip.AddrPortFrom(lab.InetEth4.Addr(), lab.EchoPort))
	if err != nil {
		t.Fatalf("probe through the tunnel: %v", err)
	}
	if seen != lab.ServerEth4.Addr() {
		t.Fatalf("inet saw %s, want the VPN server's %s (through the tunnel)", seen, lab.ServerEth4.Addr())
	}
	if out := mustTR(t, 0, "plan", "-c", path, "--netns", w.client); !strings.Contains(out, "No changes") {
		t.Fatalf("second plan not empty:\n%s", out)
	}

	// A changed keepalive is changed in place: the addresses stay.
	path = w.write(t, strings.Replace(cfg, "persistent_keepalive: 15", "persistent_keepalive: 25", 1))
	out = mustTR(t, 2, "plan", "-c", path, "--netns", w.client)
	if !strings.Contains(out, "persistent-keepalive 25") || strings.Contains(out, "address") {
		t.Fatalf("plan for a keepalive change:\n%s", out)
	}
	mustTR(t, 0, "apply", "-c", path, "--netns", w.client)
	if wg := w.observedWG(t); wg.Peers[0].Keepalive != 25 {
		t.Fatalf("keepalive is %d after apply", wg.Peers[0].Keepalive)
	}
	mustTR(t, 0, "plan", "-c", path, "--netns", w.client)

	// down takes tunroute's addresses and routes; the device is the
	// daemon's and stays.
	mustTR(t, 0, "down", "--netns", w.client)
	links := ip(t, w.client, "-o", "addr", "show", "dev", w.dev)
	if strings.Contains(links, lab.ClientWG4.Addr().String()) {
		t.Fatalf("address left after down: %s", links)
	}
}

// TestWireGuardPresharedKey: the server requires a preshared key for the
// client; the handshake (which fails without it) happens once tunroute
// has configured the key from its file, and the second plan is empty.
func TestWireGuardPresharedKey(t *testing.T) {
	w := newWGWorld(t, "p")
	psk, _ := lab.GeneratePrivateKey()
	if err := w.server.Device().IpcSet(fmt.Sprintf("public_key=%s\npreshared_key=%s\n", w.clientKey.Public().Hex(), psk.Hex())); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "peer.psk"), []byte(b64(psk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(w.device(5), "persistent_keepalive: 5\n", "persistent_keepalive: 5\n        preshared_key_file: peer.psk\n", 1)
	path := w.write(t, cfg)
	if out := mustTR(t, 2, "plan", "-c", path, "--netns", w.client); !strings.Contains(out, "preshared-key "+filepath.Join(w.dir, "peer.psk")) || strings.Contains(out, b64(psk)) {
		t.Fatalf("the plan should name the key's file, never the key:\n%s", out)
	}
	mustTR(t, 0, "apply", "-c", path, "--netns", w.client)
	w.waitHandshake(t)
	if out := mustTR(t, 0, "plan", "-c", path, "--netns", w.client); !strings.Contains(out, "No changes") {
		t.Fatalf("second plan:\n%s", out)
	}
	if snap := mustTR(t, 0, "snapshot", "--netns", w.client); strings.Contains(snap, b64(psk)) || strings.Contains(snap, psk.Hex()) {
		t.Fatal("the snapshot shows the preshared key")
	}
}
