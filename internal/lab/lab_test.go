package lab

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// serveEnv makes the test binary act as `tunroute lab serve` (see TestMain),
// so Up can be tested without the tunroute binary.
const serveEnv = "TUNROUTE_LAB_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		os.Exit(testServe(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func testServe(args []string) int {
	l := &Lab{}
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--prefix":
			l.Prefix = args[i+1]
		case "--run-dir":
			l.RunDir = args[i+1]
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := l.Serve(ctx, ReadyFile(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// newTestLab returns a lab named tr-lab<pid>- whose namespaces and serve
// process are removed when the test ends, even if it fails; the cleanup
// then checks that nothing is left.
func newTestLab(t *testing.T) *Lab {
	t.Helper()
	needRoot(t)
	l := &Lab{Prefix: fmt.Sprintf("tr-lab%d-", os.Getpid()), RunDir: t.TempDir()}
	if ok, what := l.Exists(); ok {
		t.Fatalf("a lab with prefix %s is left over from an earlier test: %s", l.Prefix, what)
	}
	t.Cleanup(func() {
		pid, start, perr := readPidFile(l.pidFile())
		if _, err := l.Down(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if ns := l.Namespaces(); len(ns) > 0 {
			t.Errorf("cleanup: namespaces left: %v", ns)
		}
		if perr == nil && l.isServeProcess(pid, start) {
			t.Errorf("cleanup: serve process %d still running", pid)
		}
	})
	return l
}

func (l *Lab) testServeCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0], l.ServeArgs()...)
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	return cmd
}

func TestPublicKey(t *testing.T) {
	// RFC 7748, section 6.1.
	var priv Key
	b, _ := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	copy(priv[:], b)
	if got, want := priv.Public().Hex(), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"; got != want {
		t.Fatalf("public key %s, want %s", got, want)
	}
	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("private key not clamped: %x", k)
	}
}

func TestDemoConfigIsTheExample(t *testing.T) {
	ex, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab-demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ex, DemoConfig) {
		t.Fatal("internal/lab/demo.yaml differs from examples/lab-demo.yaml: copy the example over it")
	}
}

func TestParseUAPI(t *testing.T) {
	s := "private_key=aa\nlisten_port=51820\npublic_key=bb\nendpoint=198.51.100.2:51820\n" +
		"last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\n" +
		"public_key=cc\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=0\nerrno=0\n"
	peers, err := ParseUAPI(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[0].PublicKey != "bb" || peers[0].RxBytes != 20 || peers[0].TxBytes != 10 ||
		!peers[0].LastHandshake.Equal(time.Unix(1700000000, 5)) || !peers[1].LastHandshake.IsZero() {
		t.Fatalf("got %+v", peers)
	}
	if _, err := ParseUAPI("errno=1\n"); err == nil {
		t.Fatal("errno=1 accepted")
	}
}

// hostFingerprint is what must not change in the host's namespace.
func hostFingerprint(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		fmt.Fprintf(&b, "link %s %s\n", l.Attrs().Name, l.Attrs().Flags)
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		fmt.Fprintf(&b, "route %s\n", r)
	}
	for _, k := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv6/conf/default/accept_dad", "ipv4/conf/all/rp_filter"} {
		v, _ := os.ReadFile("/proc/sys/net/" + k)
		fmt.Fprintf(&b, "%s=%s", k, v)
	}
	return b.String()
}

func TestBuild(t *testing.T) {
	l := newTestLab(t)
	host := hostFingerprint(t)
	timed(t, "build", l.Build)
	if got := l.Namespaces(); len(got) != 4 {
		t.Fatalf("namespaces %v", got)
	}
	if err := l.Build(); !errors.Is(err, ErrExists) {
		t.Fatalf("second Build: %v, want ErrExists", err)
	}
	for ns, want := range map[string]string{l.NS(ISP): "1", l.NS(VPNServer): "1", l.NS(Client): "0"} {
		if v, err := readSysctl(ns, "net.ipv4.ip_forward"); err != nil || v != want {
			t.Errorf("%s ip_forward=%q (%v), want %s", ns, v, err, want)
		}
	}
	echo, err := ListenEcho(l.NS(Inet), EchoPort)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	ctx := context.Background()
	for _, c := range []struct {
		src       netip.Addr
		dst, want netip.Addr
	}{
		{netip.Addr{}, InetEth4.Addr(), ClientEth4.Addr()},
		{netip.Addr{}, InetEth6.Addr(), ClientEth6.Addr()},
		{ClientEth4.Addr(), InetEth4.Addr(), ClientEth4.Addr()},
	} {
		tp := time.Now()
		saw, err := Probe(ctx, l.NS(Client), c.src, netip.AddrPortFrom(c.dst, EchoPort))
		t.Logf("probe %s from %v: %v", c.dst, c.src, time.Since(tp))
		if err != nil || saw != c.want {
			t.Errorf("client -> %s from %v: saw %v (%v), want %s", c.dst, c.src, saw, err, c.want)
		}
	}
	// The VPN server reaches inet too (its masquerade must not matter).
	if saw, err := Probe(ctx, l.NS(VPNServer), netip.Addr{}, netip.AddrPortFrom(InetEth6.Addr(), EchoPort)); err != nil || saw != ServerEth6.Addr() {
		t.Errorf("vpnserver -> inet: saw %v (%v)", saw, err)
	}
	// Without a route, the inside address has no way back: a bounded failure.
	t1 := time.Now()
	defer func() { t.Logf("failed probe: %v", time.Since(t1)) }()
	if saw, err := Probe(ctx, l.NS(Client), ClientWG4.Addr(), netip.AddrPortFrom(InetEth4.Addr(), EchoPort)); err == nil {
		t.Errorf("from 10.30.0.2 without a tunnel: saw %v, want a failure", saw)
	} else if d := time.Since(t1); d > ProbeTimeout+time.Second {
		t.Errorf("failed probe took %v", d)
	}
	timed(t, "destroy", l.Destroy)
	if ns := l.Namespaces(); len(ns) != 0 {
		t.Fatalf("left: %v", ns)
	}
	if got := hostFingerprint(t); got != host {
		t.Errorf("the host's namespace changed:\nbefore:\n%s\nafter:\n%s", host, got)
	}
}

// timed runs step and logs how long it took; the test fails if it fails.
func timed(t *testing.T, what string, step func() error) {
	t.Helper()
	start := time.Now()
	if err := step(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %v", what, time.Since(start))
}

// udpSocketInodesIn is udpSocketInodes in the namespace ns.
func udpSocketInodesIn(ns string, port int) (map[string]bool, error) {
	var inodes map[string]bool
	err := Do(ns, func() error {
		var err error
		inodes, err = udpSocketInodes(port)
		return err
	})
	return inodes, err
}

// udpSocketInodes returns the inodes of the UDP sockets bound to port in
// the namespace of the calling thread (read through /proc/thread-self).
func udpSocketInodes(port int) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range []string{"/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 {
				continue
			}
			if strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", port)) {
				out[fs[9]] = true
			}
		}
	}
	return out, nil
}

// mySocketInodes lists the inodes of this process's sockets.
func mySocketInodes(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if s, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(s, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(s, "socket:["), "]")] = true
		}
	}
	return out
}

func addTunnelRoutes(t *testing.T, l *Lab, dsts ...netip.Prefix) {
	t.Helper()
	nh, err := NetlinkIn(l.NS(Client))
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	wg, err := nh.LinkByName(WGDevice)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dsts {
		if err := nh.RouteAdd(&netlink.Route{Dst: ipNet(d), LinkIndex: wg.Attrs().Index}); err != nil {
			t.Fatalf("route %s dev wg0: %v", d, err)
		}
	}
}

var (
	inet4 = netip.AddrPortFrom(InetEth4.Addr(), EchoPort)
	inet6 = netip.AddrPortFrom(InetEth6.Addr(), EchoPort)
)

// TestWireGuardInNetns runs the tunnel in the test process and checks that
// its UDP sockets live in the lab namespaces, that traffic routed into wg0
// reaches inet through the VPN server, and that sockets reopened from a
// goroutine outside the namespace still land in it.
func TestWireGuardInNetns(t *testing.T) {
	l := newTestLab(t)
	host := hostFingerprint(t)
	if err := l.Build(); err != nil {
		t.Fatal(err)
	}
	echo, err := ListenEcho(l.NS(Inet), EchoPort)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	t0 := time.Now()
	tun, err := l.StartWireGuard(t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	ctx, cancel := context.WithTimeout(context.Background(), HandshakeTimeout)
	defer cancel()
	hs, err := tun.WaitHandshake(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wireguard start to handshake: %v", hs.Sub(t0))

	// The server's socket on 51820 is in vpnserver's namespace, is ours,
	// and no socket of ours is bound to 51820 in the host's namespace.
	mine := mySocketInodes(t)
	inNS, err := udpSocketInodesIn(l.NS(VPNServer), WGPort)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for ino := range inNS {
		if mine[ino] {
			found++
		}
	}
	if found == 0 {
		t.Errorf("no socket of this process on UDP %d in %s (sockets there: %v)", WGPort, l.NS(VPNServer), inNS)
	}
	inHost, err := udpSocketInodes(WGPort)
	if err != nil {
		t.Fatal(err)
	}
	for ino := range inHost {
		if mine[ino] {
			t.Errorf("this process has a UDP %d socket in the host's namespace (inode %s)", WGPort, ino)
		}
	}

	addTunnelRoutes(t, l, netip.MustParsePrefix("203.0.113.2/32"), netip.MustParsePrefix("2001:db8:203::2/128"))
	for _, c := range []struct {
		dst  netip.AddrPort
		want netip.Addr
	}{{inet4, ServerEth4.Addr()}, {inet6, ServerEth6.Addr()}} {
		saw, err := Probe(ctx, l.NS(Client), netip.Addr{}, c.dst)
		if err != nil || saw != c.want {
			t.Errorf("client -> %s through wg0: inet saw %v (%v), want %s", c.dst, saw, err, c.want)
		}
	}

	// wireguard-go reopens its sockets from goroutines that run in the
	// host's namespace (its TUN event reader calls Device.Up, which opens
	// the bind, when the TUN reports "up"). Do the same here, from this
	// goroutine: the new sockets must land in the namespaces again.
	for _, w := range []*WG{tun.Server, tun.Client} {
		n := w.dev.Bind().(*nsBind).opened.Load()
		if err := w.dev.BindUpdate(); err != nil {
			t.Fatalf("%s: BindUpdate: %v", w.Config.NS, err)
		}
		if m := w.dev.Bind().(*nsBind).opened.Load(); m != n+1 {
			t.Errorf("%s: bind opened %d times after BindUpdate, want %d", w.Config.NS, m, n+1)
		}
	}
	t1 := time.Now()
	ctx2, cancel2 := context.WithTimeout(context.Background(), HandshakeTimeout)
	defer cancel2()
	var saw netip.Addr
	for ctx2.Err() == nil {
		if saw, err = Probe(ctx2, l.NS(Client), netip.Addr{}, inet4); err == nil {
			break
		}
	}
	if err != nil || saw != ServerEth4.Addr() {
		t.Errorf("after reopening the sockets: inet saw %v (%v), want %s", saw, err, ServerEth4.Addr())
	} else {
		t.Logf("after reopening the sockets: traffic flows after %v", time.Since(t1))
	}
	if inNS, err = udpSocketInodesIn(l.NS(VPNServer), WGPort); err != nil {
		t.Fatal(err)
	}
	if len(inNS) == 0 {
		t.Errorf("after reopening: no socket on UDP %d in %s", WGPort, l.NS(VPNServer))
	}
	if inHost, _ := udpSocketInodes(WGPort); len(inHost) > 0 {
		mine := mySocketInodes(t)
		for ino := range inHost {
			if mine[ino] {
				t.Errorf("after reopening: this process has a UDP %d socket in the host's namespace", WGPort)
			}
		}
	}
	tun.Close()
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	if got := hostFingerprint(t); got != host {
		t.Errorf("the host's namespace changed:\nbefore:\n%s\nafter:\n%s", host, got)
	}
}

// TestUpDown runs the lab the way `tunroute lab up` does, with this test
// binary as the serve process.
func TestUpDown(t *testing.T) {
	l := newTestLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	info, err := l.Up(ctx, l.testServeCmd())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up: %v (build %v, serve ready %v, handshake %s), pid %d", time.Since(t0), info.Build, info.Serve, info.Handshake, info.PID)
	if ok, what := l.Exists(); !ok || !strings.Contains(what, fmt.Sprint(info.PID)) {
		t.Fatalf("Exists after Up: %v %q", ok, what)
	}
	if _, err := l.Up(ctx, l.testServeCmd()); !errors.Is(err, ErrExists) {
		t.Fatalf("second Up: %v, want ErrExists", err)
	}
	// The serve process's echo server and tunnel.
	if saw, err := Probe(ctx, l.NS(Client), netip.Addr{}, inet4); err != nil || saw != ClientEth4.Addr() {
		t.Fatalf("client -> inet before routes: saw %v (%v)", saw, err)
	}
	addTunnelRoutes(t, l, netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:203::/64"))
	rx0 := l.serverRx()
	for _, c := range []struct {
		dst  netip.AddrPort
		want netip.Addr
	}{{inet4, ServerEth4.Addr()}, {inet6, ServerEth6.Addr()}} {
		if saw, err := Probe(ctx, l.NS(Client), netip.Addr{}, c.dst); err != nil || saw != c.want {
			t.Errorf("client -> %s through wg0: inet saw %v (%v), want %s", c.dst, saw, err, c.want)
		}
	}
	if rx := l.serverRx(); rx <= rx0 {
		t.Errorf("server rx_bytes %d -> %d: no traffic through the tunnel", rx0, rx)
	}
	// The forced re-handshake of the demo's last path check.
	ok, msg := l.checkTunnel(ctx, rx0)
	t.Logf("tunnel check: %v %s", ok, msg)
	if !ok {
		t.Error(msg)
	}

	rep, err := l.Down(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stopped != info.PID || len(rep.Namespaces) != 4 {
		t.Fatalf("down: %+v", rep)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", info.PID)); err == nil {
		if st, _, _ := procStat(info.PID); st != "Z" {
			t.Errorf("serve process %d still there after Down", info.PID)
		}
	}
	for _, p := range []string{l.pidFile(), l.UAPISocket(Client), l.UAPISocket(VPNServer)} {
		if fileExists(p) {
			t.Errorf("%s left after Down", p)
		}
	}
	rep, err = l.Down(ctx)
	if err != nil || !rep.Nothing() {
		t.Fatalf("second down: %+v %v", rep, err)
	}
}

// TestServeFailureLeavesNothing: a serve process that cannot start (here,
// a command that is not a serve process at all) makes Up fail cleanly.
func TestServeFailureLeavesNothing(t *testing.T) {
	l := newTestLab(t)
	_, err := l.Up(context.Background(), exec.Command("/bin/true"))
	if err == nil {
		t.Fatal("Up succeeded with /bin/true as serve process")
	}
	t.Logf("Up: %v", err)
	if ns := l.Namespaces(); len(ns) != 0 {
		t.Fatalf("namespaces left: %v", ns)
	}
}

// tunrouteBinary builds cmd/tunroute into a temporary directory and checks
// that it has the commands the demo runs; it skips the test (saying why)
// while they do not exist yet.
func tunrouteBinary(t *testing.T) string {
	t.Helper()
	needRoot(t)
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build cmd/tunroute")
	}
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "tunroute")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/tunroute")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tunroute: %v\n%s", err, b)
	}
	var missing []string
	for _, c := range []string{"plan", "apply", "status", "down", "lab"} {
		if err := exec.Command(bin, c, "--help").Run(); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		t.Skipf("cmd/tunroute lacks %v: the demo cannot run yet", missing)
	}
	return bin
}

// TestCLIUpDown: `tunroute lab up` leaves the lab and its serve process
// behind and refuses a second up; `lab down` removes everything and is
// happy with nothing to remove.
func TestCLIUpDown(t *testing.T) {
	bin := tunrouteBinary(t)
	l := newTestLab(t)
	run := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args = append(args, "--prefix", l.Prefix, "--run-dir", l.RunDir)
		b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		t.Logf("tunroute %s: exit %d\n%s", strings.Join(args, " "), code, b)
		return string(b), code
	}
	t0 := time.Now()
	if _, code := run("lab", "up"); code != 0 {
		t.Fatalf("lab up: exit %d", code)
	}
	t.Logf("lab up took %v", time.Since(t0))
	if len(l.Namespaces()) != 4 {
		t.Fatalf("namespaces after up: %v", l.Namespaces())
	}
	pid, start, err := readPidFile(l.pidFile())
	if err != nil || !l.isServeProcess(pid, start) {
		t.Fatalf("no serve process after up: %v", err)
	}
	if saw, err := Probe(context.Background(), l.NS(Client), netip.Addr{}, inet6); err != nil || saw != ClientEth6.Addr() {
		t.Errorf("client -> inet after lab up: saw %v (%v)", saw, err)
	}
	if peers, err := l.PeerStats(Client); err != nil || len(peers) != 1 || peers[0].LastHandshake.IsZero() {
		t.Errorf("client wg0 after lab up: %+v %v", peers, err)
	}
	if out, code := run("lab", "up"); code == 0 || !strings.Contains(out, "exists") {
		t.Errorf("second lab up: exit %d, want non-zero and a message that the lab exists", code)
	}
	if out, code := run("lab", "down"); code != 0 || !strings.Contains(out, "stopped serve process") {
		t.Errorf("lab down: exit %d", code)
	}
	if st, _, err := procStat(pid); err == nil && st != "Z" {
		t.Errorf("serve process %d still running after down", pid)
	}
	if len(l.Namespaces()) != 0 {
		t.Errorf("namespaces after down: %v", l.Namespaces())
	}
	if out, code := run("lab", "down"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("second lab down: exit %d, want 0 and 'nothing to do'", code)
	}
}

// TestDemo runs `tunroute lab demo` end to end with the real binary.
func TestDemo(t *testing.T) {
	bin := tunrouteBinary(t)
	l := newTestLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	b, err := exec.CommandContext(ctx, bin, "lab", "demo", "--prefix", l.Prefix, "--run-dir", l.RunDir).CombinedOutput()
	t.Logf("tunroute lab demo (%v):\n%s", time.Since(t0), b)
	if err != nil {
		t.Fatalf("lab demo: %v", err)
	}
	for _, want := range []string{"PASS  path 1", "PASS  path 6", "PASS  restored", "RESULT: PASS"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(string(b), "FAIL") {
		t.Error("a check failed")
	}
	if ns := l.Namespaces(); len(ns) != 0 {
		t.Errorf("demo without --keep left namespaces %v", ns)
	}
}
