package testns

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// World is one root test's world: namespaces all named Prefix+NAME, the
// tunroute binary it runs, a directory for its configs and tunroute's
// --run-dir. It holds no testing.TB, so that subtests can share it.
type World struct {
	Prefix string
	Bin    string
	Dir    string
	RunDir string
	// Tops are the namespaces tunroute was applied on: Down runs
	// `tunroute down` there, last first.
	Tops []string
}

// NewWorld prepares a world whose namespaces start with prefix. It fails
// the test if namespaces with that prefix exist already. The caller
// registers its cleanup (Down, then RemoveNamespaces, and its own).
func NewWorld(tb testing.TB, prefix string) *World {
	tb.Helper()
	w := &World{Prefix: prefix, Bin: Tunroute(tb), Dir: tb.TempDir()}
	w.RunDir = filepath.Join(w.Dir, "run")
	if left := Own(prefix); len(left) > 0 {
		tb.Fatalf("namespaces of an earlier test with this prefix exist: %v", left)
	}
	return w
}

// NS is the full name of one of the world's namespaces.
func (w *World) NS(name string) string { return w.Prefix + name }

// AddNS creates namespaces Prefix+NAME with lo up.
func (w *World) AddNS(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		IP(tb, "", "netns", "add", w.NS(n))
		IP(tb, w.NS(n), "link", "set", "lo", "up")
	}
}

// Veth makes a veth pair: dev in namespace a, peer in namespace b, both
// up with the addresses given (made in a, the peer put straight into b:
// the host's namespace is never involved; no duplicate address
// detection).
func (w *World) Veth(tb testing.TB, a, dev string, aAddrs []string, b, peer string, bAddrs []string) {
	tb.Helper()
	IP(tb, a, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", b)
	for _, x := range aAddrs {
		IP(tb, a, "addr", "add", x, "dev", dev, "nodad")
	}
	for _, x := range bAddrs {
		IP(tb, b, "addr", "add", x, "dev", peer, "nodad")
	}
	IP(tb, a, "link", "set", dev, "up")
	IP(tb, b, "link", "set", peer, "up")
}

// TR runs the tunroute binary with the world's --run-dir and returns its
// output and exit status; a failure to run it fails the test.
func (w *World) TR(tb testing.TB, args ...string) (string, int) {
	tb.Helper()
	out, code, err := Run(append([]string{w.Bin, "--run-dir", w.RunDir}, args...), nil)
	if err != nil {
		tb.Fatalf("tunroute %v: %v", args, err)
	}
	return out, code
}

// Config writes the template testdata/NAME (see Config) into the world's
// directory as OUT, with .P the world's prefix, and returns its path.
func (w *World) Config(tb testing.TB, out, name string, data map[string]any) string {
	tb.Helper()
	p := filepath.Join(w.Dir, out)
	if err := Config(p, filepath.Join("testdata", name), w.Prefix, data); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Apply applies a config on a top namespace and fails the test if it
// does not succeed; a plan right after must then find nothing to do. It
// returns apply's output.
func (w *World) Apply(tb testing.TB, cfg, top string) string {
	tb.Helper()
	if !slices.Contains(w.Tops, top) {
		w.Tops = append(w.Tops, top)
	}
	out, code := w.TR(tb, "apply", "-c", cfg, "--netns", top)
	if code != 0 {
		tb.Fatalf("tunroute apply -c %s --netns %s: exit %d\n%s", filepath.Base(cfg), top, code, out)
	}
	if again, code := w.TR(tb, "plan", "-c", cfg, "--netns", top); code != 0 {
		tb.Errorf("tunroute plan -c %s --netns %s right after apply: exit %d, want 0 (nothing to do)\n%s", filepath.Base(cfg), top, code, again)
	}
	return out
}

// Down runs `tunroute down` on every top namespace that still exists,
// last first, each after before(top) (nil: nothing). Failures are
// reported and do not stop it: it is a cleanup.
func (w *World) Down(tb testing.TB, before func(top string)) {
	tb.Helper()
	for i := len(w.Tops) - 1; i >= 0; i-- {
		top := w.Tops[i]
		if before != nil {
			before(top)
		}
		if _, err := os.Stat(filepath.Join(Dir, top)); err != nil {
			continue
		}
		out, code, err := Run([]string{w.Bin, "--run-dir", w.RunDir, "down", "--netns", top}, nil)
		if err != nil || code != 0 {
			tb.Errorf("cleanup: tunroute down --netns %s: exit %d, %v\n%s", top, code, err, out)
		}
	}
}

// RemoveNamespaces kills what still runs in the world's namespaces and
// deletes them.
func (w *World) RemoveNamespaces(tb testing.TB) {
	tb.Helper()
	for _, ns := range Own(w.Prefix) {
		if pids := KillIn(ns); len(pids) > 0 {
			tb.Logf("cleanup: killed processes %v left in %s", pids, ns)
		}
		if err := Delete(ns); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	}
}
