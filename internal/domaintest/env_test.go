package domaintest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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

// world is what a test and its subtests share: testns.World (the
// namespaces, all named prefix+NAME, the tunroute binary, a directory
// for configs and tunroute's --run-dir), the helper binary and the
// processes the test started.
type world struct {
	*testns.World
	helper string
	procs  []*exec.Cmd
}

// in is the same world for a subtest.
func (e *env) in(t *testing.T) *env { return &env{t: t, world: e.world} }

// newEnv prepares a test's world and runs the test in parallel with the
// others (each has its own namespaces); everything in the world is
// removed when the test ends, pass or fail: `tunroute down` on every top
// namespace, the processes the test started, then every namespace
// prefix+*.
func newEnv(t *testing.T, short string, progs ...string) *env {
	return newEnvAt(t, "tr-dt", short, progs...)
}

// newEnvAt is newEnv with namespaces named PREFIX<pid>-<short>-*.
func newEnvAt(t *testing.T, prefix, short string, progs ...string) *env {
	needRoot(t, progs...)
	t.Parallel()
	_, helper := binaries(t)
	e := &env{t: t, world: &world{World: testns.NewWorld(t, fmt.Sprintf("%s%d-%s-", prefix, os.Getpid(), short)), helper: helper}}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) cleanup() {
	t := e.t
	e.Down(t, nil)
	for _, c := range e.procs {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	}
	e.RemoveNamespaces(t)
	etc, _ := os.ReadDir("/etc/netns")
	for _, d := range etc {
		if strings.HasPrefix(d.Name(), e.Prefix) {
			t.Errorf("cleanup: /etc/netns/%s is left after tunroute down", d.Name())
			testns.RemoveEtc(d.Name())
		}
	}
}

// addNS creates namespaces prefix+NAME with lo up, and IPv6 duplicate
// address detection off (what the links made there later inherit).
func (e *env) addNS(names ...string) {
	e.t.Helper()
	e.AddNS(e.t, names...)
	for _, n := range names {
		e.sysctl(e.NS(n), "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
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
// up with the addresses given.
func (e *env) veth(a, dev string, aAddrs []string, b, peer string, bAddrs []string) {
	e.t.Helper()
	e.Veth(e.t, a, dev, aAddrs, b, peer, bAddrs)
}

// tr runs the tunroute binary (with the test's --run-dir) and returns its
// output and exit status.
func (e *env) tr(args ...string) (string, int) {
	e.t.Helper()
	return e.TR(e.t, args...)
}

// run runs argv with env (nil: the test's own) for at most 30 seconds.
func (e *env) run(argv, environ []string) (string, int, error) { return testns.Run(argv, environ) }

// config writes a config from a template in testdata/, with .P the
// test's namespace prefix and the other fields from data.
func (e *env) config(name string, data map[string]any) string {
	e.t.Helper()
	return e.Config(e.t, name, name, data)
}

// configAs is config writing to a file of another name.
func (e *env) configAs(out, name string, data map[string]any) string {
	e.t.Helper()
	return e.Config(e.t, out, name, data)
}

// apply applies a config on the top namespace and fails the test if it
// does not succeed; a second plan must then find nothing to do.
func (e *env) apply(cfg, top string) string {
	e.t.Helper()
	return e.Apply(e.t, cfg, top)
}

// exec runs `tunroute exec DOMAIN [FLAGS...] -- ARGV...` with the helper
// mode in the environment (if not ""), and returns its output and status.
func (e *env) exec(domain string, flags []string, mode string, argv ...string) (string, int) {
	e.t.Helper()
	args := append([]string{e.Bin, "exec", domain}, flags...)
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
