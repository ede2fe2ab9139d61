package bgptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/bgp"
	"github.com/tunroute/tunroute/internal/testns"
)

// env is one test's world (testns.World: namespaces named prefix+NAME,
// the tunroute binary, a directory for configs and the run directory,
// tunroute's and the BIRD instances').
type env struct {
	t *testing.T
	*testns.World
	bgp *bgp.Manager
	// engine is the BGP engine under test ("bird" or "frr") and proto
	// the route protocol of what it installs.
	engine, proto string
}

func newEnv(t *testing.T, short, engine string) *env {
	needRoot(t, engine)
	e := &env{t: t, World: testns.NewWorld(t, fmt.Sprintf("tr-bgp%d-%s-", os.Getpid(), short)),
		engine: engine, proto: map[string]string{"bird": "bird", "frr": "bgp"}[engine]}
	// FRR's daemons drop to user frr: the way to their run directory
	// must be open to traverse (as /run/tunroute is).
	for d := e.Dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	e.bgp = &bgp.Manager{RunDir: e.RunDir}
	t.Cleanup(e.cleanup)
	return e
}

// cleanup stops the BIRD instances, runs tunroute down on every top,
// kills what is left in the namespaces and deletes them.
func (e *env) cleanup() {
	ctx := context.Background()
	e.Down(e.t, func(top string) {
		if err := e.bgp.StopAll(ctx, top); err != nil {
			e.t.Errorf("cleanup: stopping the BGP speakers of %s: %v", top, err)
		}
	})
	e.RemoveNamespaces(e.t)
	etc, _ := os.ReadDir("/etc/netns")
	for _, d := range etc {
		if strings.HasPrefix(d.Name(), e.Prefix) {
			os.RemoveAll(filepath.Join("/etc/netns", d.Name()))
		}
	}
}

func (e *env) addNS(names ...string) {
	e.t.Helper()
	e.AddNS(e.t, names...)
}

// ip runs ip(8), in the namespace if given; an error fails the test.
func (e *env) ip(ns string, args ...string) string {
	e.t.Helper()
	return testns.IP(e.t, ns, args...)
}

// veth makes a veth pair from namespace a to b, up, with addresses.
func (e *env) veth(a, dev, aAddr, b, peer, bAddr string) {
	e.t.Helper()
	e.Veth(e.t, a, dev, []string{aAddr}, b, peer, []string{bAddr})
}

// run runs a program for at most 30 seconds: output, exit status.
func (e *env) run(argv ...string) (string, int, error) { return testns.Run(argv, nil) }

// tr runs tunroute with the test's run directory.
func (e *env) tr(args ...string) (string, int) {
	e.t.Helper()
	return e.TR(e.t, args...)
}

// config writes testdata/NAME as OUT, with .P the namespace prefix.
func (e *env) config(out, name string, data map[string]any) string {
	e.t.Helper()
	return e.Config(e.t, out, name, data)
}

// apply applies a config on a top namespace; a plan right after must
// find nothing to do.
func (e *env) apply(cfg, top string) {
	e.t.Helper()
	e.Apply(e.t, cfg, top)
}

// planEmpty: tunroute plan must find nothing to do.
func (e *env) planEmpty(cfg, top string) {
	e.t.Helper()
	if out, code := e.tr("plan", "-c", cfg, "--netns", top); code != 0 {
		e.t.Errorf("tunroute plan -c %s --netns %s: exit %d, want 0 (nothing to do)\n%s", filepath.Base(cfg), top, code, out)
	}
}

// learned lists the IPv4 routes the engine installed in a namespace
// (protocol bird or bgp), all tables, as "PREFIX dev DEV" sorted.
func (e *env) learned(ns string) []string {
	e.t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-4", "route", "show", "table", "all", "proto", e.proto).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ip -n %s route show proto %s: %v\n%s", ns, e.proto, err, out)
	}
	var rs []struct {
		Dst string `json:"dst"`
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		e.t.Fatalf("ip -j route: %v: %s", err, out)
	}
	var ss []string
	for _, r := range rs {
		ss = append(ss, r.Dst+" dev "+r.Dev)
	}
	sort.Strings(ss)
	return ss
}

// waitRoutes polls the bird routes of ns until they are want (each
// "PREFIX dev DEV"), and returns how long it took.
func (e *env) waitRoutes(ns string, want []string, limit time.Duration) (time.Duration, error) {
	e.t.Helper()
	sort.Strings(want)
	start := time.Now()
	for {
		got := e.learned(ns)
		if slices.Equal(got, want) {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("%s: %s routes %q after %s, want %q", ns, e.proto, got, limit, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startBGP loads a config and starts (or reloads) its speakers the way
// apply does: Changes, then Apply. It returns the speakers.
func (e *env) startBGP(cfgPath, top string) []bgp.Speaker {
	e.t.Helper()
	ss := speakersOf(e.t, cfgPath, top)
	changes, err := e.bgp.Changes(ss, top)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.bgp.Apply(context.Background(), changes); err != nil {
		e.t.Fatal(err)
	}
	return ss
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
