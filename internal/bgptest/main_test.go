package bgptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/tunroute/tunroute/internal/testns"
)

func TestMain(m *testing.M) {
	var host string
	if os.Geteuid() == 0 {
		sweepStale()
		host = testns.HostState("tr-bgp")
	}
	code := m.Run()
	testns.RemoveBinary()
	if host != "" {
		if now := testns.HostState("tr-bgp"); now != host {
			fmt.Fprintf(os.Stderr, "FAIL: the tests changed the host's own namespace:\n--- before ---\n%s--- after ---\n%s", host, now)
			code = 1
		}
		if left := ownNamespaces(fmt.Sprintf("tr-bgp%d-", os.Getpid())); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: namespaces left behind: %v\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// needRoot skips the test unless it runs as root with ip, BIRD (the
// attacker and the default engine) and the engine under test.
func needRoot(t *testing.T, engine string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	progs := []string{"ip", "bird", "birdc"}
	if engine == "frr" {
		progs = append(progs, "vtysh", "/usr/lib/frr/bgpd")
	}
	for _, p := range progs {
		if _, err := lookProg(p); err != nil {
			t.Skipf("needs %s (apt-get install iproute2 bird2 frr)", p)
		}
	}
}

func lookProg(p string) (string, error) {
	if filepath.IsAbs(p) {
		_, err := os.Stat(p)
		return p, err
	}
	if path, err := exec.LookPath(p); err == nil {
		return path, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if _, err := os.Stat(filepath.Join(d, p)); err == nil {
			return filepath.Join(d, p), nil
		}
	}
	return "", fmt.Errorf("%s not found", p)
}

// binary is the tunroute the tests run: they make the domains with
// `tunroute apply`.
func binary(t *testing.T) string {
	t.Helper()
	bin, err := testns.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var staleNS = regexp.MustCompile(`^tr-bgp(\d+)-`)

func sweepStale() { testns.SweepStale(staleNS) }

var (
	ownNamespaces   = testns.Own
	deleteNamespace = testns.Delete
	killIn          = testns.KillIn
)
