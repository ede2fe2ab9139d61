package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the tunroute command once per test run.
func binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tr-dn-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tunroute")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/tunroute/tunroute/cmd/tunroute").CombinedOutput()
		if err != nil {
			buildErr = err
			tb.Logf("%s", out)
		}
	})
	if buildErr != nil {
		tb.Fatalf("building tunroute: %v", buildErr)
	}
	return binPath
}

// proc is `tunroute run` as its own process.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

type syncBuffer = testns.Buffer

// startDaemon runs `tunroute run` and waits until it answers on its
// socket; it is killed when the test ends if still running.
func (w *world) startDaemon(args ...string) *proc {
	w.tb.Helper()
	p := &proc{log: &syncBuffer{}, done: make(chan struct{})}
	argv := append([]string{"--run-dir", w.runDir, "run", "--netns", w.top, "-c", w.cfgPath}, args...)
	p.cmd = exec.Command(binary(w.tb), argv...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		w.tb.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	w.tb.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := Ask(w.runDir, w.top, "status"); err == nil && st != nil {
			return p
		}
		select {
		case <-p.done:
			w.tb.Fatalf("tunroute run exited:\n%s", p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			w.tb.Fatalf("tunroute run does not answer within 30 s:\n%s", p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kernelState is what the kernel holds in the test's namespaces, as
// ip(8) and nft(8) print it: the oracle that nothing changed.
func (w *world) kernelState() string {
	var b strings.Builder
	for _, ns := range []string{w.top, w.d1} {
		for _, c := range [][]string{
			{"ip", "-n", ns, "-d", "link"}, {"ip", "-n", ns, "addr"},
			{"ip", "-n", ns, "route", "show", "table", "all"}, {"ip", "-n", ns, "-6", "route", "show", "table", "all"},
			{"ip", "-n", ns, "rule"}, {"ip", "-n", ns, "-6", "rule"},
			{"ip", "netns", "exec", ns, "nft", "list", "ruleset"},
		} {
			out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
			if err != nil {
				w.tb.Fatalf("%v: %v %s", c, err, out)
			}
			if c[len(c)-1] == "ruleset" {
				out = []byte(withoutOwner(string(out)))
			}
			b.WriteString(strings.Join(c, " ") + "\n" + string(out))
		}
	}
	return b.String()
}

// settled waits until the kernel's own work on the new links (IPv6
// duplicate address detection of their link-local addresses) is done,
// and returns the state.
func (w *world) settled() string {
	w.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	prev := ""
	for {
		s := w.kernelState()
		if s == prev && !strings.Contains(s, "tentative") {
			return s
		}
		if time.Now().After(deadline) {
			w.tb.Fatalf("the kernel does not settle:\n%s", s)
		}
		prev = s
		time.Sleep(200 * time.Millisecond)
	}
}

// withoutOwner drops from an nft listing what says which process holds
// a table (the owner flag, "# progname"): a daemon's hold (hold.go)
// changes with the daemon, the rules do not.
func withoutOwner(listing string) string {
	var out []string
	for _, l := range strings.Split(listing, "\n") {
		if t := strings.TrimSpace(l); t == "" || t == "flags" || t == "flags owner" {
			continue
		}
		if i := strings.Index(l, " # progname "); i >= 0 {
			l = l[:i]
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
