package labtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
)

// tinc 1.0 in the lab, set up for a gateway redirect: two nodes in router mode over
// IPv4 (TCP and UDP 655 on 198.51.100.2), the server node owning
// 0.0.0.0/0 so that the client can send everything to it, NAT of the
// tunnel range out of the server's eth0. The tunnel carries IPv4 only: a
// client with IPv6 on its uplink must have it blocked, not leaked.
const (
	TincPort      = 655
	TincServerDev = "tincs0"
	TincClientDev = "tinc0"
	// TincNet is the netname both daemons get with -n.
	TincNet = "trlab"
)

// Addresses inside the tinc tunnel.
var (
	TincNet4    = netip.MustParsePrefix("10.20.0.0/24")
	TincServer4 = netip.MustParsePrefix("10.20.0.1/24")
	TincClient4 = netip.MustParsePrefix("10.20.0.2/24")
)

// TincScripts are the client's scripts that call the hook; tinc gives
// them no arguments, so each calls the hook with its own verb.
var TincScripts = []string{"tinc-up", "host-up", "host-down", "tinc-down"}

// TincConfig describes the lab's tinc.
type TincConfig struct {
	// Dir receives the two config directories, the logs and the event
	// file; it must exist.
	Dir string
	// Hook returns the command line the client's script for verb runs
	// (e.g. "/x/tunroute --run-dir D hook tinc host-up -c CFG"); nil: no
	// hook. tinc-up assigns the tunnel address before it.
	Hook func(verb string) string
	// SubnetScripts also installs the client's subnet-up and
	// subnet-down scripts (with NAME=client in their environment: tinc
	// 1.0 gives no NAME, and its tinc.conf is not under /etc/tinc here).
	SubnetScripts bool
	// ClientSubnets and ServerSubnets are more Subnet lines of the two
	// nodes' host files.
	ClientSubnets, ServerSubnets []netip.Prefix
}

// Tinc is the lab's tinc server and client.
type Tinc struct {
	l              *lab.Lab
	cfg            TincConfig
	bin            string
	Server, Client *Daemon
	starts         int
}

// TincReady is what tincd logs once it listens and has run tinc-up.
const TincReady = "Ready"

// SetupTinc writes both nodes' configs (keys, host files, scripts) into
// cfg.Dir and adds the server's NAT of the tunnel range (table inet
// tr-lab-tinc in vpnserver). It starts nothing.
//
// The client's scripts append "VERB STATUS" to the event file (see
// WaitEvent) after the hook has run, so a test can wait for a script
// instead of sleeping.
func SetupTinc(l *lab.Lab, cfg TincConfig) (*Tinc, error) {
	bin, err := lookPath("tincd")
	if err != nil {
		return nil, err
	}
	t := &Tinc{l: l, cfg: cfg, bin: bin}
	keys, err := tincKeys()
	if err != nil {
		return nil, err
	}
	nodes := []struct {
		name, dir, conf string
		key             *rsa.PrivateKey
	}{
		{"vpnserver", t.serverDir(), fmt.Sprintf("Name = vpnserver\nInterface = %s\n", TincServerDev), keys[0]},
		{"client", t.clientDir(), fmt.Sprintf("Name = client\nConnectTo = vpnserver\nInterface = %s\n", TincClientDev), keys[1]},
	}
	hostFile := map[string]string{
		"vpnserver": fmt.Sprintf("Address = %s\nPort = %d\nSubnet = %s/32\nSubnet = 0.0.0.0/0\n", lab.ServerEth4.Addr(), TincPort, TincServer4.Addr()),
		"client":    fmt.Sprintf("Subnet = %s/32\n", TincClient4.Addr()),
	}
	for _, n := range nodes {
		if err := os.MkdirAll(filepath.Join(n.dir, "hosts"), 0o700); err != nil {
			return nil, err
		}
		// Short pings and reconnect delays: a lost server is noticed in
		// about two seconds, and a reconnect is tried every second.
		conf := n.conf + "DeviceType = tun\nMode = router\nAddressFamily = ipv4\nPingInterval = 1\nPingTimeout = 1\nMaxTimeout = 1\n"
		if err := os.WriteFile(filepath.Join(n.dir, "tinc.conf"), []byte(conf), 0o600); err != nil {
			return nil, err
		}
		priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(n.key)})
		if err := os.WriteFile(filepath.Join(n.dir, "rsa_key.priv"), priv, 0o600); err != nil {
			return nil, err
		}
	}
	for name, extra := range map[string][]netip.Prefix{"vpnserver": cfg.ServerSubnets, "client": cfg.ClientSubnets} {
		for _, p := range extra {
			hostFile[name] += fmt.Sprintf("Subnet = %s\n", p)
		}
	}
	for _, n := range nodes {
		pub := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&n.key.PublicKey)})
		for _, into := range nodes {
			p := filepath.Join(into.dir, "hosts", n.name)
			if err := os.WriteFile(p, append([]byte(hostFile[n.name]+"\n"), pub...), 0o600); err != nil {
				return nil, err
			}
		}
	}
	// The server only needs its tunnel address.
	if err := writeScript(filepath.Join(t.serverDir(), "tinc-up"), tincUpLines(TincServer4)); err != nil {
		return nil, err
	}
	scripts := TincScripts
	if cfg.SubnetScripts {
		scripts = append(append([]string(nil), scripts...), "subnet-up", "subnet-down")
	}
	for _, verb := range scripts {
		var lines []string
		if verb == "tinc-up" {
			lines = tincUpLines(TincClient4)
		}
		if cfg.Hook != nil {
			env := ""
			if strings.HasPrefix(verb, "subnet-") {
				env = "NAME=client "
			}
			lines = append(lines, env+cfg.Hook(verb)+" >>"+shellQuote(t.HookLog())+" 2>&1")
		} else {
			lines = append(lines, "true")
		}
		lines = append(lines, "rc=$?", "echo \""+verb+" $rc\" >>"+shellQuote(t.EventFile()), "exit $rc")
		if err := writeScript(filepath.Join(t.clientDir(), verb), lines); err != nil {
			return nil, err
		}
	}
	if err := l.Masquerade("tr-lab-tinc", TincNet4); err != nil {
		return nil, err
	}
	return t, nil
}

func tincUpLines(addr netip.Prefix) []string {
	return []string{
		fmt.Sprintf(`ip addr add %s dev "$INTERFACE" || { echo "tinc-up: ip addr failed" >&2; exit 1; }`, addr),
		`ip link set "$INTERFACE" up || exit 1`,
	}
}

func writeScript(path string, lines []string) error {
	return os.WriteFile(path, []byte("#!/bin/sh\n"+strings.Join(lines, "\n")+"\n"), 0o755)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var (
	tincKeyOnce sync.Once
	tincKeyPair [2]*rsa.PrivateKey
	tincKeyErr  error
)

// tincKeys returns two RSA keys, made once per process (2048-bit RSA
// takes a noticeable time; the keys protect nothing outside a test).
func tincKeys() ([2]*rsa.PrivateKey, error) {
	tincKeyOnce.Do(func() {
		var wg sync.WaitGroup
		var errs [2]error
		for i := range tincKeyPair {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tincKeyPair[i], errs[i] = rsa.GenerateKey(rand.Reader, 2048)
			}()
		}
		wg.Wait()
		if errs[0] != nil {
			tincKeyErr = errs[0]
		} else {
			tincKeyErr = errs[1]
		}
	})
	return tincKeyPair, tincKeyErr
}

func (t *Tinc) serverDir() string { return filepath.Join(t.cfg.Dir, "vpnserver") }
func (t *Tinc) clientDir() string { return filepath.Join(t.cfg.Dir, "client") }

// EventFile is where the client's scripts record "VERB STATUS" lines.
func (t *Tinc) EventFile() string { return filepath.Join(t.cfg.Dir, "events") }

// HookLog receives the output of the client's hook calls.
func (t *Tinc) HookLog() string { return filepath.Join(t.cfg.Dir, "hook.log") }

// EventSize is the current length of the event file (see WaitEvent).
func (t *Tinc) EventSize() int64 { return fileSize(t.EventFile()) }

// WaitEvent waits until a client script records "VERB 0" after offset
// from (EventSize before the action). A non-zero status of that script
// is an error with the hook's output; so is the client ending.
func (t *Tinc) WaitEvent(ctx context.Context, from int64, verb string) error {
	var done <-chan struct{}
	if t.Client != nil {
		done = t.Client.Done()
	}
	err := WaitFile(ctx, t.EventFile(), from, verb+" 0\n", []string{verb + " 1", verb + " 2", verb + " 9"}, done)
	if err != nil {
		return fmt.Errorf("tinc client %s: %w\n--- hook output ---\n%s\n--- tincd log ---\n%s",
			verb, err, fileTail(t.HookLog(), 2000), t.clientLogTail())
	}
	return nil
}

func (t *Tinc) clientLogTail() string {
	if t.Client == nil {
		return ""
	}
	return t.Client.LogTail()
}

func (t *Tinc) start(name, role, dir, log string) (*Daemon, error) {
	// -c must be absolute: tincd changes to / after starting.
	argv := []string{t.bin, "-D", "-d1", "-n", TincNet, "-c", dir,
		"--pidfile=" + filepath.Join(dir, "tinc.pid"), "--logfile=" + log}
	// tincd appends its log to the same file as its stdout and stderr.
	return StartDaemon(name, t.l.NS(role), argv, []string{"PATH=" + DaemonPATH}, log)
}

// StartServer starts the server node and waits until it listens.
func (t *Tinc) StartServer(ctx context.Context) error {
	if t.Server != nil && !t.Server.Exited() {
		return fmt.Errorf("the tinc server is already running (pid %d)", t.Server.PID())
	}
	log := filepath.Join(t.cfg.Dir, "server.log")
	from := fileSize(log)
	d, err := t.start("tincd server", lab.VPNServer, t.serverDir(), log)
	if err != nil {
		return err
	}
	t.Server = d
	if err := d.WaitLog(ctx, from, TincReady); err != nil {
		return err
	}
	return nil
}

// StartClient starts the client node under `env -i PATH=...`. If wait,
// it returns once host-up (the connection to the server) has run its
// hook successfully.
func (t *Tinc) StartClient(ctx context.Context, wait bool) error {
	if t.Client != nil && !t.Client.Exited() {
		return fmt.Errorf("the tinc client is already running (pid %d)", t.Client.PID())
	}
	t.starts++
	from := t.EventSize()
	d, err := t.start("tincd client", lab.Client, t.clientDir(), filepath.Join(t.cfg.Dir, fmt.Sprintf("client-%d.log", t.starts)))
	if err != nil {
		return err
	}
	t.Client = d
	if !wait {
		return nil
	}
	return t.WaitEvent(ctx, from, "host-up")
}

// Close stops the client (so it runs host-down and tinc-down) and then
// the server; either is killed if it does not end within 3 s (its
// scripts, which the daemon waits for, may still run).
func (t *Tinc) Close() {
	for _, d := range []*Daemon{t.Client, t.Server} {
		if d != nil {
			d.Stop(3 * time.Second)
		}
	}
}
