package vpntest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/lab"
)

// binDir holds the tunroute binary, built once for the package's tests.
var binDir string

func TestMain(m *testing.M) {
	var host string
	if os.Geteuid() == 0 {
		sweepStale()
		host = lab.HostState()
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	printLeakTable(os.Stdout)
	if host != "" {
		if now := lab.HostState(); now != host {
			fmt.Fprintf(os.Stderr, "FAIL: the host's own namespace changed while these tests ran (its rules, routes marked as tunroute's or nftables tables; a hook run outside the lab would do that):\n--- before ---\n%s--- after ---\n%s", host, now)
			code = 1
		}
	}
	os.Exit(code)
}

// needs skips the test unless it runs as root with the programs given.
func needs(t *testing.T, progs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + p); err2 != nil {
				t.Skipf("needs %s (Debian package %s; scripts/test.sh installs it)", p, debPackage[p])
			}
		}
	}
}

var debPackage = map[string]string{"openvpn": "openvpn", "tincd": "tinc", "nft": "nftables", "ip": "iproute2"}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// tunroute builds cmd/tunroute once per test binary and returns its path.
// TUNROUTE_TEST_BIN names a binary to use instead (built elsewhere, e.g.
// from another revision).
func tunroute(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv("TUNROUTE_TEST_BIN"); b != "" {
			buildBin, buildErr = filepath.Abs(b)
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			if _, err2 := os.Stat("/usr/local/go/bin/go"); err2 == nil {
				gobin = "/usr/local/go/bin/go"
			} else {
				buildErr = errors.New("no go command to build cmd/tunroute")
				return
			}
		}
		out, err := exec.Command(gobin, "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %v", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if binDir, err = os.MkdirTemp("", "tr-vt-bin-"); err != nil {
			buildErr = err
			return
		}
		// Readable by the daemons' scripts whatever the umask.
		os.Chmod(binDir, 0o755)
		bin := filepath.Join(binDir, "tunroute")
		cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/tunroute")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tunroute: %v\n%s", err, b)
			return
		}
		buildBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// nsPrefix starts every namespace name of these tests; TUNROUTE_TEST_NS
// changes it (short letters and digits), so that several people testing
// on one machine never touch each other's labs.
var nsPrefix = func() string {
	if p := os.Getenv("TUNROUTE_TEST_NS"); regexp.MustCompile(`^[a-z][a-z-]{0,7}$`).MatchString(p) {
		return p
	}
	return "tr-vt"
}()

// labPrefix is the namespace prefix of one test's lab.
func labPrefix(kind string) string { return fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), kind) }

var staleNS = regexp.MustCompile(`^` + regexp.QuoteMeta(nsPrefix) + `(\d+)-([a-z0-9]+)-(client|isp|vpnserver|inet)$`)

// sweepStale removes what an earlier run of these tests left behind when
// it was killed before its cleanup (a timeout panic runs no cleanup): the
// labs of test processes that no longer exist. Their daemons died with
// them (Pdeathsig), but a hook they were running may still hold the
// namespace; such processes are killed by pid.
func sweepStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		m := staleNS.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		killIn(filepath.Join("/run/netns", e.Name()))
		l := &lab.Lab{Prefix: fmt.Sprintf("%s%s-%s-", nsPrefix, m[1], m[2])}
		if err := l.Destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "vpntest: removing the stale lab %s: %v\n", l.Prefix, err)
		} else {
			fmt.Fprintf(os.Stderr, "vpntest: removed the stale lab %s (its test process %d is gone)\n", l.Prefix, pid)
		}
	}
}

// killIn kills the processes whose network namespace is the one mounted
// at path.
func killIn(path string) {
	var ns unix.Stat_t
	if unix.Stat(path, &ns) != nil {
		return
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && st.Dev == ns.Dev && st.Ino == ns.Ino {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
