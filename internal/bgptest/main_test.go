package bgptest

import (
	"errors"
	"fmt"
	"io/fs"
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

func TestMain(m *testing.M) {
	var host string
	if os.Geteuid() == 0 {
		sweepStale()
		host = lab.HostState("tr-bgp")
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if host != "" {
		if now := lab.HostState("tr-bgp"); now != host {
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

var (
	buildOnce sync.Once
	binDir    string
	buildBin  string
	buildErr  error
)

// binary builds cmd/tunroute once (TUNROUTE_TEST_BIN names one to use
// instead): the tests make the domains with `tunroute apply`.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv("TUNROUTE_TEST_BIN"); b != "" {
			buildBin, buildErr = filepath.Abs(b)
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "tr-bgp-bin-"); buildErr != nil {
			return
		}
		gobin, err := lookProg("go")
		if err != nil {
			gobin = "/usr/local/go/bin/go"
		}
		out, err := exec.Command(gobin, "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %v", err)
			return
		}
		bin := filepath.Join(binDir, "tunroute")
		cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/tunroute")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
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

var staleNS = regexp.MustCompile(`^tr-bgp(\d+)-`)

// sweepStale removes the namespaces of earlier runs that were killed
// before their cleanup (their test process is gone), after killing the
// processes still inside them (BIRD instances), and their /etc/netns
// directories.
func sweepStale() {
	for _, dir := range []string{"/run/netns", "/etc/netns"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			m := staleNS.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			pid, _ := strconv.Atoi(m[1])
			if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
				continue
			}
			if dir == "/run/netns" {
				killIn(e.Name())
				deleteNamespace(e.Name())
			} else {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// ownNamespaces lists the namespaces whose name starts with prefix.
func ownNamespaces(prefix string) []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func deleteNamespace(name string) error {
	p := filepath.Join("/run/netns", name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// killIn kills, by pid, the processes inside the named namespace (only
// ever the tests' own) and returns their pids.
func killIn(name string) []int {
	var ns unix.Stat_t
	if unix.Stat(filepath.Join("/run/netns", name), &ns) != nil {
		return nil
	}
	var killed []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && st.Dev == ns.Dev && st.Ino == ns.Ino {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed = append(killed, pid)
			}
		}
	}
	return killed
}
