package labtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// Daemon is an external program (a VPN daemon) the lab runs in the
// foreground inside one of its namespaces. It is started from a thread
// that has entered the namespace and that stays alive, blocked in wait,
// for as long as the program runs: the program gets SIGKILL when that
// thread ends (Pdeathsig), so a test process that dies, even by a panic
// or a timeout, takes its daemons with it.
type Daemon struct {
	Name string // for messages
	NS   string // namespace name
	Log  string // stdout and stderr
	pid  int
	done chan struct{}
	err  error // from wait, valid once done is closed
}

// StartDaemon runs argv in the named namespace with exactly the
// environment env (nothing is inherited: like `env -i`), from the root
// directory, with stdout and stderr appended to logPath. argv[0] must be
// an absolute path.
func StartDaemon(name, nsName string, argv, env []string, logPath string) (*Daemon, error) {
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return nil, fmt.Errorf("%s: program %q is not an absolute path", name, argv)
	}
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("%s: netns %s: %w", name, nsName, err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.Close()
		return nil, err
	}
	d := &Daemon{Name: name, NS: nsName, Log: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(d.done)
		defer logf.Close()
		defer h.Close()
		runtime.LockOSThread()
		// Never unlocked: the thread leaves the host's namespace and
		// must end with this goroutine (see Do).
		if err := netns.Set(h); err != nil {
			started <- fmt.Errorf("%s: enter netns %s: %w", name, nsName, err)
			return
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		if cmd.Env == nil {
			cmd.Env = []string{}
		}
		cmd.Dir = "/"
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("%s: start in netns %s: %w", name, nsName, err)
			return
		}
		d.pid = cmd.Process.Pid
		started <- nil
		d.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		<-d.done
		return nil, err
	}
	return d, nil
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.pid }

// Exited reports whether the daemon has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Done is closed when the daemon has ended.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Kill sends SIGKILL to the daemon (by its pid, which cannot have been
// reused while it is not reaped) and waits for it to end.
func (d *Daemon) Kill() {
	if !d.Exited() {
		syscall.Kill(d.pid, syscall.SIGKILL)
	}
	<-d.done
}

// Stop asks the daemon to end with SIGTERM (so it runs its down scripts)
// and waits up to grace for it, then kills it. It reports whether the
// daemon ended by itself.
func (d *Daemon) Stop(grace time.Duration) bool {
	if d.Exited() {
		return true
	}
	syscall.Kill(d.pid, syscall.SIGTERM)
	select {
	case <-d.done:
		return true
	case <-time.After(grace):
		d.Kill()
		return false
	}
}

// LogSize is the current length of the daemon's log: pass it to WaitLog
// to look only at what is written after now.
func (d *Daemon) LogSize() int64 { return fileSize(d.Log) }

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// LogTail returns the end of the daemon's log, for error messages.
func (d *Daemon) LogTail() string { return fileTail(d.Log, 2000) }

// WaitLog waits until the daemon's log, from offset from, contains want.
// It fails as soon as it contains one of fail, or the daemon ends.
func (d *Daemon) WaitLog(ctx context.Context, from int64, want string, fail ...string) error {
	err := WaitFile(ctx, d.Log, from, want, fail, d.done)
	if err != nil {
		return fmt.Errorf("%s in %s: %w\n--- %s ---\n%s", d.Name, d.NS, err, d.Log, d.LogTail())
	}
	return nil
}

// ErrExited is returned by WaitFile when the process it watches ends.
var ErrExited = errors.New("the process ended")

// WaitFile polls path, from offset from, until it contains want. It
// fails when it contains one of fail, when ctx ends, or when done (if not
// nil) is closed first.
func WaitFile(ctx context.Context, path string, from int64, want string, fail []string, done <-chan struct{}) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(path)
		if int64(len(b)) > from {
			b = b[from:]
		} else {
			b = nil
		}
		for _, f := range fail {
			if i := bytes.Index(b, []byte(f)); i >= 0 {
				return fmt.Errorf("waiting for %q: found %q", want, lineAt(b, i))
			}
		}
		if bytes.Contains(b, []byte(want)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w", want, ctx.Err())
		case <-done:
			// One last look: the line may have been written just before
			// the end.
			if b, _ := os.ReadFile(path); int64(len(b)) > from && bytes.Contains(b[from:], []byte(want)) {
				return nil
			}
			return fmt.Errorf("waiting for %q: %w", want, ErrExited)
		case <-tick.C:
		}
	}
}

func lineAt(b []byte, i int) string {
	s := bytes.LastIndexByte(b[:i], '\n') + 1
	e := bytes.IndexByte(b[i:], '\n')
	if e < 0 {
		return string(b[s:])
	}
	return string(b[s : i+e])
}

func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}

// DaemonPATH is the PATH daemons and their scripts get.
const DaemonPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds a program in DaemonPATH.
func lookPath(prog string) (string, error) {
	for _, dir := range strings.Split(DaemonPATH, ":") {
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", prog, DaemonPATH)
}
