package devtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
	"github.com/tunroute/tunroute/internal/testns"
)

// clearCounter counts, on the ISP's side of the client's uplink, every
// packet from the client that is not IPsec's transport to the VPN
// server (IKE, NAT-T, ESP) nor IPv6 neighbour discovery.
type clearCounter struct{ ns string }

func newClearCounter(t *testing.T, isp string) *clearCounter {
	t.Helper()
	return newCounter(t, isp, fmt.Sprintf("ip daddr %[1]s udp dport { 500, 4500 } accept\n    ip daddr %[1]s meta l4proto esp accept", lab.ServerEth4.Addr()))
}

// newCounter counts what comes from the client's uplink but the
// transport (nft statements that accept it) and neighbour discovery.
func newCounter(t *testing.T, isp, transport string) *clearCounter {
	t.Helper()
	rules := fmt.Sprintf(`table inet trdev_count {
  chain uplink {
    type filter hook prerouting priority -400; policy accept;
    iifname != "c0" accept
    %s
    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept
    counter
  }
}
`, transport)
	cmd := exec.Command("ip", "netns", "exec", isp, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", isp, err, out)
	}
	return &clearCounter{ns: isp}
}

var packetsRE = regexp.MustCompile(`counter packets (\d+)`)

func (c *clearCounter) read(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", c.ns, "nft", "list", "table", "inet", "trdev_count").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	m := packetsRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no counter in:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// traffic keeps the client trying to reach the Internet (UDP and TCP,
// IPv4 and IPv6) until stopped.
func traffic(t *testing.T, client string) (stop func()) {
	t.Helper()
	var done atomic.Bool
	var wg sync.WaitGroup
	targets := []netip.AddrPort{netip.AddrPortFrom(lab.InetEth4.Addr(), 7), netip.AddrPortFrom(lab.InetEth6.Addr(), 7)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			for _, dst := range targets {
				lab.Do(client, func() error {
					if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst)); err == nil {
						c.Write([]byte("leak?"))
						c.Close()
					}
					d := net.Dialer{Timeout: 30 * time.Millisecond}
					if c, err := d.Dial("tcp", netip.AddrPortFrom(dst.Addr(), lab.EchoPort).String()); err == nil {
						c.Close()
					}
					return nil
				})
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() { done.Store(true); wg.Wait() }
}

func ipOut(ns string, args ...string) string {
	out, _ := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	return string(out)
}

// TestStrongSwanHook: a real charon (kernel-libipsec) in the lab calls
// `tunroute hook strongswan` as its updown script. The identity comes up
// on ipsec0 and traffic goes through the tunnel; the same call again (a
// rekey, libreswan's repeated up) changes nothing; strongSwan's table 220
// and its rule are never touched; and while charon is killed with SIGKILL,
// no packet leaves the uplink in clear. The control: before the kill
// switch, the counter does count the same traffic.
func TestStrongSwanHook(t *testing.T) {
	needRoot(t)
	for _, p := range []string{labtest.CharonBin, "/usr/sbin/swanctl", "/usr/sbin/nft"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s (Debian: strongswan-charon strongswan-swanctl libcharon-extra-plugins nftables; scripts/test.sh installs them)", p)
		}
	}
	bin := testns.Tunroute(t)
	dir := t.TempDir()
	l := lab.New(fmt.Sprintf("tr-dev%ds-", os.Getpid()))
	l.RunDir = dir
	if err := l.Build(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Destroy(); err != nil {
			t.Error(err)
		}
	})
	client, isp := l.NS(lab.Client), l.NS(lab.ISP)
	// The pool's replies find their way back without NAT.
	ip(t, isp, "route", "add", "10.40.0.0/24", "via", lab.ServerEth4.Addr().String())
	echo, err := lab.ListenEcho(l.NS(lab.Inet), lab.EchoPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Close)

	run := filepath.Join(dir, "run")
	cfg := filepath.Join(dir, "tunroute.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`vpns:
  - {name: work, type: strongswan, device: ipsec0, servers: [%s]}
identities:
  - {name: work, vpn: work, gateway: none}
killswitch: {}
`, lab.ServerEth4.Addr())), 0o600)
	// charon's updown: record the environment (to repeat the call), then
	// the hook.
	updown := filepath.Join(dir, "updown.sh")
	os.WriteFile(updown, []byte(fmt.Sprintf("#!/bin/sh\nenv | grep ^PLUTO_ > %[1]s/last.env\nexec %[2]s hook strongswan -c %[3]s --run-dir %[4]s >> %[1]s/hook.log 2>&1\n",
		dir, bin, cfg, run)), 0o755)

	// ESP over the TUN device ipsec0, with charon's own routes into it
	// (table 220), which tunroute must leave alone.
	libipsec := labtest.CharonConfig{Libipsec: true, InstallRoutes: true}
	labtest.StartCharon(t, l.NS(lab.VPNServer), filepath.Join(dir, "server"), libipsec, fmt.Sprintf(`connections {
  trdev {
    local_addrs = %s
    pools = trdevpool
    proposals = aes128-sha256-modp2048
    local { auth = psk
      id = server@trdev }
    remote { auth = psk
      id = client@trdev }
    children { trdev { local_ts = 0.0.0.0/0
      esp_proposals = aes128-sha256 } }
  }
}
pools { trdevpool { addrs = 10.40.0.0/24 } }
secrets { ike-1 { id-1 = client@trdev
  id-2 = server@trdev
  secret = trdev-test-psk } }
`, lab.ServerEth4.Addr()))
	cc := labtest.StartCharon(t, client, filepath.Join(dir, "client"), libipsec, fmt.Sprintf(`connections {
  trdev {
    remote_addrs = %s
    vips = 0.0.0.0
    encap = yes
    proposals = aes128-sha256-modp2048
    local { auth = psk
      id = client@trdev }
    remote { auth = psk
      id = server@trdev }
    children { trdev { remote_ts = 0.0.0.0/0
      esp_proposals = aes128-sha256
      updown = %s } }
  }
}
secrets { ike-1 { id-1 = client@trdev
  id-2 = server@trdev
  secret = trdev-test-psk } }
`, lab.ServerEth4.Addr(), updown))

	counter := newClearCounter(t, isp)
	// Control: without tunroute's kill switch the counter sees the traffic.
	stop := traffic(t, client)
	time.Sleep(300 * time.Millisecond)
	stop()
	control := counter.read(t)
	if control == 0 {
		t.Fatal("control: the counter saw nothing of the client's traffic in clear; it cannot see a leak")
	}

	mustTR(t, 0, "apply", "-c", cfg, "--netns", client, "--run-dir", run)
	base := counter.read(t)
	stop = traffic(t, client)
	defer func() { stop() }()

	cc.Swanctl(t, "--initiate", "--child", "trdev", "--timeout", "20")
	hookLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "hook.log")); return string(b) }
	upLine := "vpn work (strongswan up-client 10.40.0.1/32=0.0.0.0/0) on ipsec0"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(hookLog(), upLine) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(hookLog(), upLine) {
		clog, _ := os.ReadFile(filepath.Join(dir, "client", "charon.log"))
		t.Fatalf("the hook did not bring the vpn up:\n%s\nclient charon:\n%s", hookLog(), clog)
	}
	if strings.Contains(hookLog(), "table 220") || strings.Contains(hookLog(), "lookup 220") {
		t.Fatalf("tunroute planned something in strongSwan's table 220:\n%s", hookLog())
	}
	seen, err := lab.Probe(context.Background(), client, netip.Addr{}, netip.AddrPortFrom(lab.InetEth4.Addr(), lab.EchoPort))
	if err != nil || seen != netip.MustParseAddr("10.40.0.1") {
		diag := ""
		for _, ns := range []string{client, l.NS(lab.VPNServer)} {
			diag += "=== " + ns + "\n" + ipOut(ns, "rule") + ipOut(ns, "route", "show", "table", "all") + ipOut(ns, "addr")
			out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").CombinedOutput()
			diag += string(out)
		}
		slog, _ := os.ReadFile(filepath.Join(dir, "server", "charon.log"))
		t.Fatalf("probe through IPsec: %v, inet saw %s, want the virtual IP 10.40.0.1\n%s\nhook:\n%s\nserver:\n%s", err, seen, diag, hookLog(), slog)
	}
	// The identity bound to the virtual IP uses its table.
	if r := ipOut(client, "route", "get", "203.0.113.2", "from", "10.40.0.1"); !strings.Contains(r, "dev ipsec0") {
		t.Fatalf("the identity's route: %s", r)
	}
	strongswanBefore := ipOut(client, "route", "show", "table", "220") + ipOut(client, "rule", "show", "pref", "220")
	if !strings.Contains(strongswanBefore, "dev ipsec0") {
		t.Fatalf("charon's table 220 is not as expected:\n%s", strongswanBefore)
	}

	// The same call again, as on a rekey: nothing to do.
	envb, err := os.ReadFile(filepath.Join(dir, "last.env"))
	if err != nil {
		t.Fatal(err)
	}
	again := exec.Command(bin, "hook", "strongswan", "-c", cfg, "--run-dir", run)
	again.Env = append(strings.Split(strings.TrimSpace(string(envb)), "\n"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	if err := lab.Do(client, func() error { return again.Start() }); err != nil {
		t.Fatal(err)
	}
	if err := again.Wait(); err != nil {
		t.Fatalf("the repeated hook call failed: %v", err)
	}
	if out := mustTR(t, 0, "plan", "-c", cfg, "--netns", client, "--run-dir", run); !strings.Contains(out, "No changes") {
		t.Fatalf("after the repeated call:\n%s", out)
	}
	if now := ipOut(client, "route", "show", "table", "220") + ipOut(client, "rule", "show", "pref", "220"); now != strongswanBefore {
		t.Fatalf("strongSwan's table 220 or rule changed:\n--- before\n%s--- after\n%s", strongswanBefore, now)
	}
	// A real rekey of the CHILD_SA (and of the IKE_SA): still nothing to do.
	cc.Swanctl(t, "--rekey", "--child", "trdev")
	cc.Swanctl(t, "--rekey", "--ike", "trdev")
	time.Sleep(time.Second)
	if out := mustTR(t, 0, "plan", "-c", cfg, "--netns", client, "--run-dir", run); !strings.Contains(out, "No changes") {
		t.Fatalf("after a rekey:\n%s\nhook:\n%s", out, hookLog())
	}
	if _, err := lab.Probe(context.Background(), client, netip.Addr{}, netip.AddrPortFrom(lab.InetEth4.Addr(), lab.EchoPort)); err != nil {
		t.Fatalf("after a rekey: %v", err)
	}
	up := counter.read(t) - base

	// The server becomes unreachable for a while (the ISP drops what goes
	// to it): the tunnel is dead, nothing may go around it.
	block := exec.Command("ip", "netns", "exec", isp, "nft", "-f", "-")
	block.Stdin = strings.NewReader(fmt.Sprintf("table inet trdev_block {\n chain f {\n  type filter hook forward priority 0; policy accept;\n  ip daddr %s drop\n  ip saddr %s drop\n }\n}\n", lab.ServerEth4.Addr(), lab.ServerEth4.Addr()))
	if out, err := block.CombinedOutput(); err != nil {
		t.Fatalf("blocking the server: %v: %s", err, out)
	}
	time.Sleep(1500 * time.Millisecond)
	if out, err := exec.Command("ip", "netns", "exec", isp, "nft", "delete", "table", "inet", "trdev_block").CombinedOutput(); err != nil {
		t.Fatalf("unblocking: %v: %s", err, out)
	}
	unreachable := counter.read(t) - base - up

	// The tunnel device is deleted under charon.
	ip(t, client, "link", "del", "ipsec0")
	time.Sleep(time.Second)
	deleted := counter.read(t) - base - up - unreachable

	// charon dies; the kill switch holds.
	cc.Kill()
	time.Sleep(time.Second)
	stop()
	killed := counter.read(t) - base - up - unreachable - deleted
	t.Logf("packets in clear on the uplink: control (no kill switch) %d; tunnel up (repeated hook call, rekeys) %d; server unreachable %d; tunnel device deleted %d; charon SIGKILLed %d",
		control, up, unreachable, deleted, killed)
	if up != 0 || unreachable != 0 || deleted != 0 || killed != 0 {
		t.Fatalf("packets left in clear: %d while up, %d while the server was unreachable, %d after ipsec0 was deleted, %d after charon was killed", up, unreachable, deleted, killed)
	}
	mustTR(t, 0, "down", "--netns", client, "--run-dir", run)
	if now := ipOut(client, "rule", "show", "pref", "220"); !strings.Contains(now, "lookup 220") {
		t.Fatalf("strongSwan's rule went with down: %s", now)
	}
}
