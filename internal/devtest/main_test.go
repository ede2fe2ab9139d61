package devtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/testns"
)

func TestMain(m *testing.M) {
	os.Exit(testns.Main{Name: "devtest", Links: []string{"trdev"}}.Run(m))
}

func needRoot(t *testing.T) { testns.Need(t, "ip") }

// tr runs tunroute with args and returns its output and exit code.
func tr(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testns.Tunroute(t), args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("tunroute %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// mustTR runs tunroute and fails the test unless it exits with want.
func mustTR(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, code := tr(t, args...)
	if code != want {
		t.Fatalf("tunroute %s: exit %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// serveUAPI gives a lab WireGuard device a UAPI socket where wgctrl (and
// wg(8)) look for userspace devices, removed when the test ends.
func serveUAPI(t *testing.T, w *lab.WG) {
	t.Helper()
	if _, err := os.Stat(kernel.WireGuardSocketDir); os.IsNotExist(err) {
		if err := os.MkdirAll(kernel.WireGuardSocketDir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Leave the host as it was: the directory goes when empty.
		t.Cleanup(func() { os.Remove(kernel.WireGuardSocketDir) })
	}
	stop, err := w.ServeUAPI(filepath.Join(kernel.WireGuardSocketDir, w.Config.Name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

func ip(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return testns.IP(t, ns, args...)
}
