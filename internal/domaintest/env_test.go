package domaintest

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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/testns"
)

// env is one test's world as seen from one (sub)test: failures go to t.
type env struct {
	t *testing.T
	*world
}

// world is what a test and its subtests share: the namespaces (all named
// prefix+NAME), the tunroute binary, a directory for configs and
// tunroute's --run-dir.
type world struct {
	prefix string // tr-dt<pid>-<short>-
	bin    string
	helper string
	dir    string
	runDir string
	// tops are the namespaces tunroute was applied on: `down` runs there
	// first in the cleanup.
	tops []string
	// procs are the processes the test started.
	procs []*exec.Cmd
}

// in is the same world for a subtest.
func (e *env) in(t *testing.T) *env { return &env{t: t, world: e.world} }

// newEnv prepares a test's world; everything in it is removed when the
// test ends, pass or fail: `tunroute down` on every top namespace, the
// processes the test started, then every namespace prefix+*.
func newEnv(t *testing.T, short string, progs ...string) *env {
	needRoot(t, progs...)
	bin, helper := binaries(t)
	e := &env{t: t, world: &world{prefix: fmt.Sprintf("tr-dt%d-%s-", os.Getpid(), short), bin: bin, helper: helper, dir: t.TempDir()}}
	e.runDir = filepath.Join(e.dir, "run")
	if left := testns.Own(e.prefix); len(left) > 0 {
		t.Fatalf("namespaces of an earlier test with this prefix exist: %v", left)
	}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) cleanup() {
	t := e.t
	for i := len(e.tops) - 1; i >= 0; i-- {
		top := e.tops[i]
		if _, err := os.Stat(filepath.Join("/run/netns", top)); err != nil {
			continue
		}
		// Not e.tr: nothing here may stop the cleanup.
		out, code, err := e.run([]string{e.bin, "--run-dir", e.runDir, "down", "--netns", top}, nil)
		if err != nil || code != 0 {
			t.Errorf("cleanup: tunroute down --netns %s: exit %d, %v\n%s", top, code, err, out)
		}
	}
	for _, c := range e.procs {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	}
	for _, ns := range testns.Own(e.prefix) {
		if pids := testns.KillIn(ns); len(pids) > 0 {
			t.Logf("cleanup: killed processes %v left in %s", pids, ns)
		}
		if err := testns.Delete(ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	etc, _ := os.ReadDir("/etc/netns")
	for _, d := range etc {
		if strings.HasPrefix(d.Name(), e.prefix) {
			t.Errorf("cleanup: /etc/netns/%s is left after tunroute down", d.Name())
			testns.RemoveEtc(d.Name())
		}
	}
}

// ns is the full name of one of the test's namespaces.
func (e *env) ns(name string) string { return e.prefix + name }

// addNS creates namespaces prefix+NAME with lo up, and IPv6 duplicate
// address detection off (what the links made there later inherit).
func (e *env) addNS(names ...string) {
	e.t.Helper()
	for _, n := range names {
		full := e.ns(n)
		e.ip("", "netns", "add", full)
		e.ip(full, "link", "set", "lo", "up")
		e.sysctl(full, "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
	}
}

// sysctl sets net.* sysctls inside a namespace.
func (e *env) sysctl(ns string, kv ...string) {
	e.t.Helper()
	err := lab.Do(ns, func() error {
		for _, s := range kv {
			k, v, _ := strings.Cut(s, "=")
			if err := os.WriteFile("/proc/sys/"+strings.ReplaceAll(k, ".", "/"), []byte(v), 0); err != nil {
				return fmt.Errorf("sysctl %s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("netns %s: %v", ns, err)
	}
}

// router turns forwarding on in a namespace (a "host" that routes
// between its routing domains).
func (e *env) router(ns string) {
	e.sysctl(ns, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
}

// ip runs ip(8), in the namespace if given, and fails the test on error.
func (e *env) ip(ns string, args ...string) string {
	e.t.Helper()
	return testns.IP(e.t, ns, args...)
}

// veth makes a veth pair: dev in namespace a, peer in namespace b, both
// up with the addresses given (made in a, the peer put straight into b:
// the host's namespace is never involved).
func (e *env) veth(a, dev string, aAddrs []string, b, peer string, bAddrs []string) {
	e.t.Helper()
	e.ip(a, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", b)
	for _, x := range aAddrs {
		e.ip(a, "addr", "add", x, "dev", dev, "nodad")
	}
	for _, x := range bAddrs {
		e.ip(b, "addr", "add", x, "dev", peer, "nodad")
	}
	e.ip(a, "link", "set", dev, "up")
	e.ip(b, "link", "set", peer, "up")
}

// tr runs the tunroute binary (with the test's --run-dir) and returns its
// output and exit status.
func (e *env) tr(args ...string) (string, int) {
	e.t.Helper()
	out, code, err := e.run(append([]string{e.bin, "--run-dir", e.runDir}, args...), nil)
	if err != nil {
		e.t.Fatalf("tunroute %v: %v", args, err)
	}
	return out, code
}

// run runs argv with env (nil: the test's own) for at most 30 seconds.
func (e *env) run(argv, environ []string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.Exited() {
			return out.String(), ee.ExitCode(), nil
		}
		return out.String(), -1, fmt.Errorf("%v (%s)", err, out.String())
	}
	return out.String(), 0, err
}

// config writes a config from a template in testdata/, with .P the
// test's namespace prefix and the other fields from data.
func (e *env) config(name string, data map[string]any) string {
	e.t.Helper()
	return e.configAs(name, name, data)
}

// configAs is config writing to a file of another name.
func (e *env) configAs(out, name string, data map[string]any) string {
	e.t.Helper()
	p := filepath.Join(e.dir, out)
	if err := testns.Config(p, filepath.Join("testdata", name), e.prefix, data); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// apply applies a config on the top namespace and fails the test if it
// does not succeed; a second plan must then find nothing to do.
func (e *env) apply(cfg, top string) string {
	e.t.Helper()
	if !slices.Contains(e.tops, top) {
		e.tops = append(e.tops, top)
	}
	out, code := e.tr("apply", "-c", cfg, "--netns", top)
	if code != 0 {
		e.t.Fatalf("tunroute apply -c %s --netns %s: exit %d\n%s", filepath.Base(cfg), top, code, out)
	}
	if again, code := e.tr("plan", "-c", cfg, "--netns", top); code != 0 {
		e.t.Errorf("tunroute plan right after apply: exit %d, want 0 (nothing to do)\n%s", code, again)
	}
	return out
}

// exec runs `tunroute exec DOMAIN [FLAGS...] -- ARGV...` with the helper
// mode in the environment (if not ""), and returns its output and status.
func (e *env) exec(domain string, flags []string, mode string, argv ...string) (string, int) {
	e.t.Helper()
	args := append([]string{e.bin, "exec", domain}, flags...)
	args = append(append(args, "--"), argv...)
	environ := os.Environ()
	if mode != "" {
		environ = append(environ, helperEnv+"="+mode)
	}
	out, code, err := e.run(args, environ)
	if err != nil {
		e.t.Fatalf("tunroute exec %s %v -- %v: %v", domain, flags, argv, err)
	}
	return out, code
}

// waitLinks waits until every veth, vxlan and tun device in the
// namespaces is operational: a veth that was just set up drops what it
// is given until the kernel's link watch has activated it.
func (e *env) waitLinks(nss ...string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, ns := range nss {
		for {
			var links []struct {
				Name  string `json:"ifname"`
				Oper  string `json:"operstate"`
				Flags []string
				Info  struct {
					Kind string `json:"info_kind"`
				} `json:"linkinfo"`
			}
			out := e.ip(ns, "-j", "-d", "link")
			if err := json.Unmarshal([]byte(out), &links); err != nil {
				e.t.Fatal(err)
			}
			var waiting []string
			for _, l := range links {
				if slices.Contains(l.Flags, "UP") && l.Info.Kind != "" && l.Oper != "UP" && l.Oper != "UNKNOWN" {
					waiting = append(waiting, l.Name+" "+l.Oper)
				}
			}
			if len(waiting) == 0 {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("netns %s: links not operational: %v", ns, waiting)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// ipAddr is one address of `ip -j addr`.
type ipAddr struct {
	Dev    string
	Addr   netip.Addr
	Prefix netip.Prefix
	Scope  string
}

// addrs lists a namespace's addresses.
func (e *env) addrs(ns string) []ipAddr {
	e.t.Helper()
	var links []struct {
		Name string `json:"ifname"`
		Info []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(e.ip(ns, "-j", "addr")), &links); err != nil {
		e.t.Fatal(err)
	}
	var out []ipAddr
	for _, l := range links {
		for _, a := range l.Info {
			x, err := netip.ParseAddr(a.Local)
			if err != nil {
				e.t.Fatalf("netns %s: address %q: %v", ns, a.Local, err)
			}
			out = append(out, ipAddr{Dev: l.Name, Addr: x, Prefix: netip.PrefixFrom(x, a.PrefixLen), Scope: a.Scope})
		}
	}
	return out
}

// links lists the names of a namespace's links.
func (e *env) links(ns string) []string {
	e.t.Helper()
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(e.ip(ns, "-j", "link")), &links); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		out = append(out, l.Name)
	}
	slices.Sort(out)
	return out
}

// nft runs nft(8) inside a namespace.
func nft(ns string, args ...string) (string, error) { return testns.Nft(ns, "", args...) }

// dropCount sums the packets counted by the rules of tunroute's table in
// a namespace whose comment contains what.
func (e *env) dropCount(ns, what string) uint64 {
	e.t.Helper()
	var n uint64
	for c, p := range e.counters(ns, "tunroute") {
		if strings.Contains(c, what) {
			n += p
		}
	}
	return n
}

// counters reads the packet counters of the rules of an inet table in a
// namespace, added up by rule comment (none if there is no such table).
func (e *env) counters(ns, table string) map[string]uint64 {
	e.t.Helper()
	out, err := nft(ns, "-j", "list", "table", "inet", table)
	if err != nil && strings.Contains(out, "No such file or directory") {
		return map[string]uint64{}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := testns.NftCounters([]byte(out))
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// nftLoad loads a ruleset (nft -f) into a namespace.
func (e *env) nftLoad(ns, ruleset string) {
	e.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("nft -f in %s: %v\n%s\n%s", ns, err, out, ruleset)
	}
}
