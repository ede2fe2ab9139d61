package vmtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/tunroute/tunroute/internal/kerneltest"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

func inVM(t *testing.T) {
	t.Helper()
	if os.Getenv("TUNROUTE_VM") == "" {
		t.Skip("runs inside the VM of scripts/vmtest.sh (this kernel lacks the devices)")
	}
}

// newNS creates the namespace tr-dev-vm-NAME with lo up, deleted when
// the test ends.
func newNS(t *testing.T, name string) string {
	t.Helper()
	return testns.NewNS(t, "tr-dev-vm-"+name)
}

// cable joins a and b with a veth pair (eth0 in each) carrying the given
// addresses: the underlay of the tunnels.
func cable(t *testing.T, a, b string, addrA, addrB string) {
	t.Helper()
	testns.Cmd(t, "ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	testns.Cmd(t, "ip", "-n", a, "addr", "add", addrA, "dev", "eth0")
	testns.Cmd(t, "ip", "-n", b, "addr", "add", addrB, "dev", "eth0")
	testns.Cmd(t, "ip", "-n", a, "link", "set", "eth0", "up")
	testns.Cmd(t, "ip", "-n", b, "link", "set", "eth0", "up")
}

// writeConfig writes a config (and any extra files) into a fresh dir.
func writeConfig(t *testing.T, yaml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "tunroute.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// planFor compiles the config against the namespace and plans it.
var planFor = kerneltest.Plan

// apply plans and applies the config; it returns the plan applied.
func apply(t *testing.T, ns, path string) *plan.Plan {
	t.Helper()
	p, h := planFor(t, ns, path)
	if _, err := h.Execute(p.Ops); err != nil {
		t.Fatalf("apply in %s: %v\nplan:\n%s", ns, err, p.Text())
	}
	return p
}

// down removes everything tunroute owns in ns.
var down = kerneltest.Down

func observedLink(t *testing.T, ns, name string) *state.Link {
	t.Helper()
	obs := kerneltest.Observe(t, ns)
	for i := range obs.Links {
		if obs.Links[i].Name == name {
			return &obs.Links[i]
		}
	}
	return nil
}

// inNS runs f on a thread inside the named namespace.
func inNS(ns string, f func() error) error {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread dies with the goroutine: never reused elsewhere
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	return <-done
}

// udpThrough sends datagrams from src (in namespace a) to dst (in b) until
// one arrives or the time is up, and reports the source address seen.
func udpThrough(t *testing.T, a string, src netip.Addr, b string, dst netip.AddrPort, within time.Duration) (netip.Addr, error) {
	t.Helper()
	var rc *net.UDPConn
	if err := inNS(b, func() error {
		var err error
		rc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		return netip.Addr{}, fmt.Errorf("listen in %s: %w", b, err)
	}
	defer rc.Close()
	var sc *net.UDPConn
	if err := inNS(a, func() error {
		var err error
		var local *net.UDPAddr
		if src.IsValid() {
			local = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
		sc, err = net.DialUDP("udp", local, net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		return netip.Addr{}, fmt.Errorf("socket in %s: %w", a, err)
	}
	defer sc.Close()
	deadline := time.Now().Add(within)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		sc.Write([]byte("tunroute"))
		rc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := rc.ReadFromUDPAddrPort(buf)
		if err == nil && string(buf[:n]) == "tunroute" {
			return from.Addr().Unmap(), nil
		}
	}
	return netip.Addr{}, errors.New("nothing arrived")
}
