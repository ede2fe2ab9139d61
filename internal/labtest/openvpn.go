package labtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
)

// OpenVPN in the lab: a server in vpnserver (UDP 1194 on 198.51.100.2,
// topology subnet, IPv4 and IPv6 inside the tunnel, NAT of the tunnel
// ranges out of its eth0) and a client in client that installs no routes
// itself (route-noexec): its scripts do, which is tunroute's hook.
const (
	OpenVPNPort      = 1194
	OpenVPNServerDev = "ovpns0"
	OpenVPNClientDev = "ovpn0"
)

// Addresses inside the OpenVPN tunnel (`server 10.8.0.0 255.255.255.0`,
// `server-ipv6 2001:db8:8::/64`: the server takes .1 and ::1, the first
// client .2 and ::1000).
var (
	OpenVPNNet4    = netip.MustParsePrefix("10.8.0.0/24")
	OpenVPNNet6    = netip.MustParsePrefix("2001:db8:8::/64")
	OpenVPNServer4 = netip.MustParseAddr("10.8.0.1")
	OpenVPNServer6 = netip.MustParseAddr("2001:db8:8::1")
	OpenVPNClient4 = netip.MustParseAddr("10.8.0.2")
	OpenVPNClient6 = netip.MustParseAddr("2001:db8:8::1000")
)

// OpenVPNReady is what OpenVPN logs once it is up (for a client: after
// the route-up script ran).
const OpenVPNReady = "Initialization Sequence Completed"

// openVPNScriptFailed is what OpenVPN logs when a script exits non-zero.
var openVPNScriptFailed = []string{"Failed running command", "Exiting due to fatal error"}

// OpenVPNConfig describes the lab's OpenVPN.
type OpenVPNConfig struct {
	// Dir receives the keys, the configs and the logs; it must exist.
	Dir string
	// Hook is the command the client runs as its up, route-up,
	// route-pre-down and down script (OpenVPN appends its arguments);
	// empty: no scripts. It is split on spaces by OpenVPN, so its words
	// must not contain any.
	Hook string
	// Setenv are `setenv NAME VALUE` lines of the client, which reach
	// every script.
	Setenv map[string]string
	// Keepalive is the server's `keepalive PING RESTART` (pushed to the
	// client); zero: 1 and 4 seconds, so a lost server is noticed fast.
	Keepalive [2]int
	// Push are extra `push "..."` options of the server; the server
	// always pushes `dhcp-option DNS 10.8.0.1`.
	Push []string
}

// OpenVPN is the lab's OpenVPN server and client.
type OpenVPN struct {
	l              *lab.Lab
	cfg            OpenVPNConfig
	bin            string
	Server, Client *Daemon
	starts         int
}

// SetupOpenVPN writes a fresh PKI (EC P-256 CA, server and client
// certificates, a tls-crypt key) and the two configs into cfg.Dir, and
// adds the server's NAT of the tunnel ranges (table inet tr-lab-openvpn
// in vpnserver). It starts nothing.
func SetupOpenVPN(l *lab.Lab, cfg OpenVPNConfig) (*OpenVPN, error) {
	bin, err := lookPath("openvpn")
	if err != nil {
		return nil, err
	}
	if cfg.Keepalive == [2]int{} {
		cfg.Keepalive = [2]int{1, 4}
	}
	o := &OpenVPN{l: l, cfg: cfg, bin: bin}
	if err := writeOpenVPNPKI(cfg.Dir); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "server.conf"), []byte(o.serverConf()), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "client.conf"), []byte(o.clientConf()), 0o600); err != nil {
		return nil, err
	}
	if err := l.Masquerade("tr-lab-openvpn", OpenVPNNet4, OpenVPNNet6); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *OpenVPN) path(name string) string { return filepath.Join(o.cfg.Dir, name) }

func (o *OpenVPN) serverConf() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# the lab's OpenVPN server (vpnserver)
dev %s
dev-type tun
proto udp4
local %s
port %d
topology subnet
server 10.8.0.0 255.255.255.0
server-ipv6 %s
ca %s
cert %s
key %s
dh none
tls-crypt %s
keepalive %d %d
disable-dco
push "dhcp-option DNS %s"
verb 3
`, OpenVPNServerDev, lab.ServerEth4.Addr(), OpenVPNPort, OpenVPNNet6,
		o.path("ca.crt"), o.path("server.crt"), o.path("server.key"), o.path("tc.key"),
		o.cfg.Keepalive[0], o.cfg.Keepalive[1], OpenVPNServer4)
	for _, p := range o.cfg.Push {
		fmt.Fprintf(&b, "push %q\n", p)
	}
	return b.String()
}

func (o *OpenVPN) clientConf() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# the lab's OpenVPN client (client): it installs no routes itself
client
dev %s
dev-type tun
proto udp4
remote %s %d
nobind
connect-retry 1 1
ca %s
cert %s
key %s
tls-crypt %s
remote-cert-tls server
verify-x509-name server name
disable-dco
route-noexec
verb 3
`, OpenVPNClientDev, lab.ServerEth4.Addr(), OpenVPNPort,
		o.path("ca.crt"), o.path("client.crt"), o.path("client.key"), o.path("tc.key"))
	if o.cfg.Hook != "" {
		b.WriteString("script-security 2\n")
		for _, s := range []string{"up", "route-up", "route-pre-down", "down"} {
			fmt.Fprintf(&b, "%s %q\n", s, o.cfg.Hook)
		}
	}
	var names []string
	for k := range o.cfg.Setenv {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "setenv %s %s\n", k, o.cfg.Setenv[k])
	}
	return b.String()
}

// ClientConfPath is the client's config file.
func (o *OpenVPN) ClientConfPath() string { return o.path("client.conf") }

// StartServer starts the server and waits until it is ready.
func (o *OpenVPN) StartServer(ctx context.Context) error {
	if o.Server != nil && !o.Server.Exited() {
		return fmt.Errorf("the OpenVPN server is already running (pid %d)", o.Server.PID())
	}
	from := fileSize(o.path("server.log"))
	d, err := StartDaemon("openvpn server", o.l.NS(lab.VPNServer),
		[]string{o.bin, "--config", o.path("server.conf")}, []string{"PATH=" + DaemonPATH}, o.path("server.log"))
	if err != nil {
		return err
	}
	o.Server = d
	return d.WaitLog(ctx, from, OpenVPNReady, openVPNScriptFailed...)
}

// StartClient starts the client under `env -i PATH=...` (so its scripts
// see only what OpenVPN sets). If wait, it returns once the client is
// connected and its route-up script has run successfully; a failing
// script is an error. Each start logs to a file of its own
// (client-N.log).
func (o *OpenVPN) StartClient(ctx context.Context, wait bool) error {
	if o.Client != nil && !o.Client.Exited() {
		return fmt.Errorf("the OpenVPN client is already running (pid %d)", o.Client.PID())
	}
	o.starts++
	d, err := StartDaemon("openvpn client", o.l.NS(lab.Client),
		[]string{o.bin, "--config", o.path("client.conf")}, []string{"PATH=" + DaemonPATH},
		o.path(fmt.Sprintf("client-%d.log", o.starts)))
	if err != nil {
		return err
	}
	o.Client = d
	if !wait {
		return nil
	}
	return d.WaitLog(ctx, 0, OpenVPNReady, openVPNScriptFailed...)
}

// Close stops the client (SIGTERM, so its down scripts run) and then the
// server; either is killed if it does not end within 3 s (its
// scripts, which the daemon waits for, may still run).
func (o *OpenVPN) Close() {
	for _, d := range []*Daemon{o.Client, o.Server} {
		if d != nil {
			d.Stop(3 * time.Second)
		}
	}
}

// writeOpenVPNPKI writes ca.crt, server.crt/key, client.crt/key (EC
// P-256; serverAuth and clientAuth) and tc.key (tls-crypt) into dir.
func writeOpenVPNPKI(dir string) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "tr-lab-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for _, leaf := range []struct {
		name string
		eku  x509.ExtKeyUsage
	}{{"server", x509.ExtKeyUsageServerAuth}, {"client", x509.ExtKeyUsageClientAuth}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: leaf.name},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(48 * time.Hour),
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{leaf.eku},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, leaf.name+".crt"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, leaf.name+".key"), "PRIVATE KEY", kder); err != nil {
			return err
		}
	}
	// An OpenVPN static key (what `openvpn --genkey tls-crypt` writes):
	// 256 random bytes, 16 per line in hex.
	k := make([]byte, 256)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("-----BEGIN OpenVPN Static key V1-----\n")
	for i := 0; i < len(k); i += 16 {
		b.WriteString(hex.EncodeToString(k[i:i+16]) + "\n")
	}
	b.WriteString("-----END OpenVPN Static key V1-----\n")
	return os.WriteFile(filepath.Join(dir, "tc.key"), []byte(b.String()), 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
