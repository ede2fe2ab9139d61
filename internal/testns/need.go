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
