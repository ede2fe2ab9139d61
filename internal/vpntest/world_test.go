package vpntest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
	"github.com/tunroute/tunroute/internal/testns"
)

// daemons is what the tests need of a VPN's pair of daemons.
type daemons interface {
	StartServer(ctx context.Context) error
	StartClient(ctx context.Context, wait bool) error
	client() *labtest.Daemon
	server() *labtest.Daemon
	// mark returns a position in the client's output; waitUp waits for
	// the connection to be up again after it (the hook ran), waitLost
	// for the client to notice its server is gone (the hook ran).
	mark() int64
	waitUp(ctx context.Context, mark int64) error
	waitLost(ctx context.Context, mark int64) error
	// restart stops the client if it still runs (its down hooks run)
	// and starts it again, waiting for it to be up.
	restart(ctx context.Context, t *testing.T) error
	Close()
}

// kind is one VPN daemon under test.
type kind struct {
	name      string // the config's vpn type
	short     string // in the lab prefix
	prog      string // the daemon's program
	clientDev string
	transport []transport
	// tunnel6: the tunnel carries IPv6 (OpenVPN here); without it, the
	// client's IPv6 must be blocked.
	tunnel6 bool
	// lostWithdraws: when the client loses its server, its hooks take
	// the VPN down and tunroute withdraws the tunnel's routes (OpenVPN
	// restarts the connection); otherwise the routes stay and traffic
	// dies in the tunnel device (tinc keeps it while it reconnects).
	lostWithdraws bool
	// dns is the resolver inside the tunnel (answered by the test's UDP
	// echo on the server), the only one the kill switch allows.
	dns netip.Addr
	// example is the config under test, in examples/; vpnName is its
	// vpn, tunnelID its tunnel identity.
	example           string
	vpnName, tunnelID string
	start             func(w *world) (daemons, error)
}

// world is one lab with one VPN, its config and the test's instruments.
type world struct {
	k      *kind
	bin    string
	lab    *lab.Lab
	dir    string
	runDir string
	cfg    string
	client string // namespace names
	isp    string
	inet   string
	server string
	vpn    daemons
	ctr    *counters
	// foreign is the snapshot of other tools' objects taken before
	// tunroute's first apply.
	foreign string
	rules0  string
	// fuzzRuns is how many random environments the hook fuzz tries
	// (hookFuzzRuns if 0).
	fuzzRuns int
	example  string // the example config the test config is made of
}

// newWorld builds the lab with the daemons of k (not started), the
// test's instruments, other tools' objects and the config.
func newWorld(t *testing.T, k *kind) *world {
	w := newLab(t, k)
	t0 := time.Now()
	w.addForeign(t)
	w.foreign = w.foreignSnapshot(t)
	w.rules0 = w.ipJSON(t, "rule") + w.ipJSON(t, "-6", "rule")
	ex, err := os.ReadFile(filepath.Join("..", "..", "examples", k.example))
	if err != nil {
		t.Fatal(err)
	}
	w.example = string(ex)
	if err := os.WriteFile(w.cfg, []byte(w.example+selectBlock(k.tunnelID)), 0o644); err != nil {
		t.Fatal(err)
	}
	if w.vpn, err = k.start(w); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.vpn.Close)
	t.Logf("%s set up in %v", k.name, time.Since(t0).Round(time.Millisecond))
	return w
}

// newLab builds the lab, removed when the test ends, with the echo
// servers in inet, the UDP echo on the VPN server's port 53 and the
// counters in isp.
func newLab(t *testing.T, k *kind) *world {
	progs := []string{"ip", "nft"}
	if k.prog != "" {
		progs = append(progs, k.prog)
	}
	needs(t, progs...)
	w := &world{k: k, bin: testns.Tunroute(t), dir: t.TempDir()}
	w.runDir = filepath.Join(w.dir, "run")
	w.cfg = filepath.Join(w.dir, "tunroute.yaml")
	w.lab = &lab.Lab{Prefix: labPrefix(k.short), RunDir: filepath.Join(w.dir, "lab")}
	w.client, w.isp, w.inet, w.server = w.lab.NS(lab.Client), w.lab.NS(lab.ISP), w.lab.NS(lab.Inet), w.lab.NS(lab.VPNServer)
	if ns := w.lab.Namespaces(); len(ns) > 0 {
		t.Fatalf("namespaces of an earlier lab with this prefix exist: %v", ns)
	}
	t0 := time.Now()
	if err := w.lab.Build(); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: the namespaces go after the
	// daemons and listeners registered below.
	t.Cleanup(func() {
		if err := w.lab.Destroy(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if ns := w.lab.Namespaces(); len(ns) > 0 {
			t.Errorf("cleanup: namespaces left: %v", ns)
		}
	})
	for _, port := range []int{echoPort, sshPort, telPort} {
		e, err := lab.ListenEcho(w.inet, port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
	}
	for _, l := range []struct {
		ns   string
		port int
	}{{w.inet, udpPort}, {w.server, 53}} {
		u, err := listenUDPEcho(l.ns, l.port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(u.Close)
	}
	var err error
	w.ctr, err = newCounters(w.isp, [2]netip.Addr{lab.ServerEth4.Addr(), lab.ServerEth6.Addr()}, k.transport,
		[2]netip.Addr{ispResolver4, ispResolver6})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab %s* built in %v", w.lab.Prefix, time.Since(t0).Round(time.Millisecond))
	return w
}

// The ISP's resolver: an address of the isp on the client's LAN (the
// home router's), the one a DHCP server would hand out.
var (
	ispResolver4 = lab.ISPC04.Addr()
	ispResolver6 = lab.ISPC06.Addr()
)

// hookCommand is the tunroute hook command line a daemon's script runs.
func (w *world) hookCommand(args ...string) string {
	return strings.Join(append([]string{w.bin, "--run-dir", w.runDir, "hook"}, append(args, "-c", w.cfg)...), " ")
}

// tr runs the tunroute binary in the test's own namespace (commands
// that name the namespace they work on with --netns) and returns its
// output and exit status.
func (w *world) tr(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, code, err := run("", append([]string{w.bin}, args...), nil)
	if err != nil {
		t.Fatalf("tunroute %v: %v", args, err)
	}
	return out, code
}

// hook runs `tunroute --run-dir D hook ARGS -c CFG` inside the client's
// namespace, as the VPN daemon does, with exactly the environment env.
// (A hook works on the namespace it runs in: run from the test's own, it
// would change the host's.)
func (w *world) hook(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	argv := append([]string{w.bin, "--run-dir", w.runDir, "hook"}, append(args, "-c", w.cfg)...)
	out, code, err := run(w.client, argv, env)
	if err != nil {
		t.Fatalf("tunroute hook %v: %v", args, err)
	}
	return out, code
}

// run runs argv (nsName "": in the test's namespace; otherwise forked
// from a thread inside that namespace) with env (nil: the test's own),
// for at most 30 seconds.
func run(nsName string, argv, env []string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var err error
	if nsName == "" {
		err = cmd.Run()
	} else if derr := lab.Do(nsName, func() error { err = cmd.Run(); return nil }); derr != nil {
		return "", 0, derr
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode(), nil
	case err != nil:
		return out.String(), 0, err
	}
	return out.String(), 0, nil
}

// apply applies a config in the client namespace.
func (w *world) apply(t *testing.T, cfg string) {
	t.Helper()
	out, code := w.tr(t, "--run-dir", w.runDir, "apply", "-c", cfg, "--netns", w.client)
	if code != 0 {
		t.Fatalf("tunroute apply -c %s: exit %d\n%s", cfg, code, out)
	}
}

// settle waits until no tunroute command holds the client namespace's
// lock: a hook the daemon started has finished applying.
func (w *world) settle() {
	p := filepath.Join(w.runDir, "lock", "ns-"+w.client)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	unix.Flock(int(f.Fd()), unix.LOCK_EX)
}

// factsFile is where the hooks store the VPN's facts.
func (w *world) factsFile() string {
	return filepath.Join(w.runDir, "facts", "ns-"+w.client, w.k.vpnName+".json")
}

// factsDown reports whether the facts say the VPN went down.
func (w *world) factsDown() bool {
	b, err := os.ReadFile(w.factsFile())
	if err != nil {
		return false
	}
	var f struct {
		Down bool `json:"down"`
	}
	return json.Unmarshal(b, &f) == nil && f.Down
}

// ensureUp restarts the client if it is not running, and waits for the
// tunnel to carry traffic to inet.
func (w *world) ensureUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if d := w.vpn.client(); d == nil || d.Exited() || w.factsDown() {
		if err := w.vpn.restart(ctx, t); err != nil {
			t.Fatalf("restarting the %s client: %v", w.k.name, err)
		}
	}
	w.settle()
	if err := w.waitTunnel(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitTunnel waits until a TCP connection to inet arrives from the VPN
// server's address.
func (w *world) waitTunnel(ctx context.Context) error {
	var last outcome
	for {
		last = tcpTry(w.client, netip.AddrPortFrom(lab.InetEth4.Addr(), echoPort))
		if last.err == nil && last.saw == lab.ServerEth4.Addr() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the %s tunnel does not carry traffic to inet: last try %v\n%s", w.k.name, last, w.diagnose())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// diagnose describes the client's routing and the VPN's facts, for a
// failure message.
func (w *world) diagnose() string {
	var b strings.Builder
	for _, args := range [][]string{{"addr"}, {"route"}, {"-6", "route"}, {"rule"}, {"route", "show", "table", "all", "proto", "116"}} {
		out, _ := exec.Command("ip", append([]string{"-n", w.client}, args...)...).CombinedOutput()
		fmt.Fprintf(&b, "--- ip %s ---\n%s", strings.Join(args, " "), out)
	}
	facts, err := os.ReadFile(w.factsFile())
	if err != nil {
		facts = []byte(err.Error())
	}
	fmt.Fprintf(&b, "--- facts ---\n%s\n", facts)
	for _, f := range []string{"events", "hook.log"} {
		if tail, err := os.ReadFile(filepath.Join(w.dir, f)); err == nil {
			if len(tail) > 3000 {
				tail = tail[len(tail)-3000:]
			}
			fmt.Fprintf(&b, "--- %s ---\n%s\n", f, tail)
		}
	}
	if w.vpn == nil {
		return b.String()
	}
	for _, d := range []*labtest.Daemon{w.vpn.client(), w.vpn.server()} {
		if d != nil {
			fmt.Fprintf(&b, "--- %s (exited: %v) ---\n%s\n", d.Log, d.Exited(), d.LogTail())
		}
	}
	return b.String()
}

// read reads the isp's counters.
func (w *world) read(t *testing.T) counts {
	t.Helper()
	c, err := w.ctr.read()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nl is a netlink handle in a namespace.
func nl(t *testing.T, nsName string) *netlink.Handle {
	t.Helper()
	n, err := lab.NetlinkIn(nsName)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// routeDev is the device the client's kernel would send a packet to dst
// by (like `ip route get`), or the error in parentheses.
func (w *world) routeDev(t *testing.T, dst netip.Addr) string {
	t.Helper()
	dev, err := lab.RouteDev(w.client, dst)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return dev
}

// ip runs ip(8) with the arguments, in the namespace if given (-n).
func ip(t *testing.T, nsName string, args ...string) string {
	t.Helper()
	return testns.IP(t, nsName, args...)
}

// nft runs nft(8) in the namespace.
var nft = testns.Nft

// addForeign puts another tool's nftables table and wg-quick's rules
// and routes into the client's namespace.
func (w *world) addForeign(t *testing.T) {
	if out, err := nft(w.client, testns.ForeignNftables, "-f", "-"); err != nil {
		t.Fatalf("nft -f (foreign table): %v\n%s", err, out)
	}
	for _, f := range []string{"-4", "-6"} {
		ip(t, w.client, f, "rule", "add", "not", "fwmark", "0xca6c", "lookup", "51820", "pref", "32000")
		ip(t, w.client, f, "rule", "add", "lookup", "main", "suppress_prefixlength", "0", "pref", "31999")
	}
	ip(t, w.client, "route", "add", "unreachable", "10.255.0.0/24", "table", "51820")
	ip(t, w.client, "route", "add", "10.255.1.0/24", "via", lab.ISPC04.Addr().String(), "dev", "eth0", "table", "51820")
	addForeign6Route(t, w.client)
}

func addForeign6Route(t *testing.T, nsName string) {
	ip(t, nsName, "-6", "route", "add", "2001:db8:ff::/48", "via", lab.ISPC06.Addr().String(), "dev", "eth0", "table", "51820")
}

// ipJSON runs `ip -j ARGS` in the client namespace.
func (w *world) ipJSON(t *testing.T, args ...string) string {
	t.Helper()
	return ip(t, w.client, append([]string{"-j"}, args...)...)
}

// foreignSnapshot dumps the foreign objects: the foreign table as nft
// prints it, the rules that are not tunroute's (protocol 116) and table
// 51820, each entry byte for byte as ip -j prints it.
func (w *world) foreignSnapshot(t *testing.T) string {
	t.Helper()
	table, err := nft(w.client, "", "-j", "list", "table", "inet", "foreign")
	if err != nil {
		t.Fatalf("nft list table inet foreign: %v\n%s", err, table)
	}
	var b strings.Builder
	b.WriteString("nft: " + table)
	for _, f := range []string{"-4", "-6"} {
		b.WriteString("rules " + f + ": " + notOwned(t, w.ipJSON(t, f, "rule")) + "\n")
		b.WriteString("table 51820 " + f + ": " + w.ipJSON(t, f, "route", "show", "table", "51820"))
	}
	return b.String()
}

// notOwned keeps the entries of an ip -j array that are not tunroute's
// (protocol 116), byte for byte.
func notOwned(t *testing.T, js string) string {
	t.Helper()
	var entries []json.RawMessage
	if err := json.Unmarshal([]byte(js), &entries); err != nil {
		t.Fatalf("ip -j output: %v\n%s", err, js)
	}
	var kept []string
	for _, e := range entries {
		var x struct {
			Protocol any `json:"protocol"`
		}
		json.Unmarshal(e, &x)
		if fmt.Sprint(x.Protocol) == "116" {
			continue
		}
		kept = append(kept, string(e))
	}
	return "[" + strings.Join(kept, ",") + "]"
}

// linkGone waits until the client has no device of that name.
func (w *world) linkGone(t *testing.T, ctx context.Context, dev string) error {
	h := nl(t, w.client)
	defer h.Delete()
	for {
		if _, err := h.LinkByName(dev); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still exists", dev)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
