package domaintest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// helperEnv makes the test binary act as a small program instead of
// running tests: the command `tunroute exec` runs inside a domain.
const helperEnv = "TR_DT_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:], os.Stdout, os.Stderr))
	}
	var host string
	if os.Geteuid() == 0 {
		sweepStale()
		host = testns.HostState("dt")
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if host != "" {
		if now := testns.HostState("dt"); now != host {
			fmt.Fprintf(os.Stderr, "FAIL: the tests changed the host's own namespace:\n--- before ---\n%s--- after ---\n%s", host, now)
			code = 1
		}
		if left := ownNamespaces(fmt.Sprintf("tr-dt%d-", os.Getpid())); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: namespaces left behind: %v\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// helper is what the test binary does when run as a command inside a
// domain. It returns the exit status.
//
//	tcp ADDR:PORT   connect, print the line the server answers, exit 0
//	                (1 and the error on stderr if that fails)
//	wait            print "ready" and wait to be killed
func helper(mode string, args []string, stdout, stderr io.Writer) int {
	switch mode {
	case "tcp":
		if len(args) != 1 {
			fmt.Fprintln(stderr, "usage: tcp ADDR:PORT")
			return 2
		}
		c, err := net.DialTimeout("tcp", args[0], 3*time.Second)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprint(stdout, line)
		return 0
	case "wait":
		fmt.Fprintln(stdout, "ready")
		select {}
	}
	fmt.Fprintf(stderr, "%s=%q: unknown mode\n", helperEnv, mode)
	return 2
}

// needRoot skips the test unless it runs as root with ip(8) and nft(8),
// the oracles the tests read the kernel with.
func needRoot(t *testing.T, progs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, p := range append([]string{"ip", "nft"}, progs...) {
		if _, err := lookProg(p); err != nil {
			t.Skipf("needs %s (scripts/test.sh installs it)", p)
		}
	}
}

func lookProg(p string) (string, error) {
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
	helperBin string
	buildErr  error
)

// binaries builds cmd/tunroute once per test binary (TUNROUTE_TEST_BIN
// names one to use instead) and copies the test binary next to it, where
// any user may run it as a helper. It returns both paths.
func binaries(t *testing.T) (tunroute, helper string) {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "tr-dt-bin-"); buildErr != nil {
			return
		}
		os.Chmod(binDir, 0o755)
		helperBin = filepath.Join(binDir, "helper")
		if buildErr = copyExecutable(helperBin); buildErr != nil {
			return
		}
		if b := os.Getenv("TUNROUTE_TEST_BIN"); b != "" {
			buildBin, buildErr = filepath.Abs(b)
			return
		}
		gobin, err := lookProg("go")
		if err != nil {
			if _, err2 := os.Stat("/usr/local/go/bin/go"); err2 != nil {
				buildErr = errors.New("no go command to build cmd/tunroute")
				return
			}
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
	return buildBin, helperBin
}

func copyExecutable(to string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

var staleNS = regexp.MustCompile(`^tr-dt(\d+)-`)

func sweepStale() { testns.SweepStale(staleNS) }

var (
	ownNamespaces   = testns.Own
	deleteNamespace = testns.Delete
	killIn          = testns.KillIn
	removeEtc       = testns.RemoveEtc
)
