package testns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Need skips the test unless it runs as root (the tests create network
// namespaces) and finds each of progs (see LookProg).
func Need(tb testing.TB, progs ...string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (network namespaces)")
	}
	for _, p := range progs {
		if _, err := LookProg(p); err != nil {
			tb.Skipf("needs %s (scripts/test.sh installs it)", p)
		}
	}
}

// LookProg finds a program: an absolute path as it is, else in PATH or
// in the sbin and bin directories a root's PATH may lack.
func LookProg(p string) (string, error) {
	if filepath.IsAbs(p) {
		_, err := os.Stat(p)
		return p, err
	}
	if path, err := exec.LookPath(p); err == nil {
		return path, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/usr/local/go/bin"} {
		if _, err := os.Stat(filepath.Join(d, p)); err == nil {
			return filepath.Join(d, p), nil
		}
	}
	return "", fmt.Errorf("%s not found", p)
}

// Tunroute is Binary for one test: a failed build fails the test.
func Tunroute(tb testing.TB) string {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// NewNS creates the named namespace with lo up (after deleting one a
// killed run left under that name) and deletes it when the test ends,
// whatever the outcome, unless the test deleted it itself.
func NewNS(tb testing.TB, name string) string {
	tb.Helper()
	exec.Command("ip", "netns", "del", name).Run() // a leftover of a killed run
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(Dir, name)); err != nil {
			return
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	IP(tb, name, "link", "set", "lo", "up")
	return name
}
