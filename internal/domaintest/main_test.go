package domaintest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
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
	os.Exit(testns.Main{Name: "domaintest", Links: []string{"dt"},
		Namespaces: fmt.Sprintf("tr-dt%d-", os.Getpid()), Sweep: sweepStale,
		After: removeHelper}.Run(m))
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
	testns.Need(t, append([]string{"ip", "nft"}, progs...)...)
}

var lookProg = testns.LookProg

var (
	helperOnce sync.Once
	helperDir  string
	helperBin  string
	helperErr  error
)

func removeHelper() {
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
}

// binaries returns the tunroute the tests run (testns.Binary: built once,
// or TUNROUTE_TEST_BIN) and a copy of the test binary where any user may
// run it as a helper.
func binaries(t *testing.T) (tunroute, helper string) {
	t.Helper()
	helperOnce.Do(func() {
		if helperDir, helperErr = os.MkdirTemp("", "tr-dt-bin-"); helperErr != nil {
			return
		}
		os.Chmod(helperDir, 0o755)
		helperBin = filepath.Join(helperDir, "helper")
		helperErr = copyExecutable(helperBin)
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return testns.Tunroute(t), helperBin
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
