package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ServeReadyTimeout bounds the wait for the serve process to report.
const ServeReadyTimeout = 20 * time.Second

// UpInfo tells what Up did and how long it took.
type UpInfo struct {
	PID       int           // the serve process
	Build     time.Duration // namespaces, links, addresses, routes, nftables
	Serve     time.Duration // start of serve until its report (includes the handshake)
	Handshake string        // time from WireGuard start to first handshake, as serve reported it
}

// Exists tells whether any part of the lab is there: one of its namespaces
// or a live serve process. The string says what was found.
func (l *Lab) Exists() (bool, string) {
	var what []string
	if ns := l.Namespaces(); len(ns) > 0 {
		what = append(what, "namespaces "+strings.Join(ns, " "))
	}
	if pid, start, err := readPidFile(l.pidFile()); err == nil && l.isServeProcess(pid, start) {
		what = append(what, fmt.Sprintf("serve process %d", pid))
	}
	return len(what) > 0, strings.Join(what, ", ")
}

// Up builds the lab and starts cmd, which must run Serve for this lab (the
// tunroute binary with ServeArgs), as a detached background process in its
// own session. It returns once the serve process reports that the VPN is up
// (first handshake done). On any failure it leaves nothing behind.
func (l *Lab) Up(ctx context.Context, cmd *exec.Cmd) (info *UpInfo, err error) {
	if ok, what := l.Exists(); ok {
		return nil, fmt.Errorf("%w (prefix %q): %s; run `tunroute lab down` first", ErrExists, l.Prefix, what)
	}
	// A pid file whose process is gone is stale.
	os.Remove(l.pidFile())
	info = &UpInfo{}
	t0 := time.Now()
	if err := l.Build(); err != nil {
		return nil, err
	}
	info.Build = time.Since(t0)
	defer func() {
		if err != nil {
			l.deleteNamespaces()
		}
	}()

	if err := os.MkdirAll(l.runDir(), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(l.logFile(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	if !filepath.IsAbs(cmd.Path) {
		if cmd.Path, err = filepath.Abs(cmd.Path); err != nil {
			return nil, err
		}
	}
	cmd.Dir = "/" // do not pin the caller's working directory
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{pw}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", ReadyFDEnv, 3))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	t1 := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, fmt.Errorf("start serve process: %w", err)
	}
	pw.Close()
	exited := make(chan struct{})
	// Reap the child if it exits while this process lives (tests, demo).
	go func() { cmd.Wait(); close(exited) }()

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(pr).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	var msg string
	select {
	case msg = <-line:
	case <-time.After(ServeReadyTimeout):
		msg = "error: no report within " + ServeReadyTimeout.String()
	case <-ctx.Done():
		msg = "error: " + ctx.Err().Error()
	}
	info.Serve = time.Since(t1)
	info.PID = cmd.Process.Pid
	if h, ok := strings.CutPrefix(msg, "ok handshake="); ok {
		info.Handshake = h
		return info, nil
	}
	// Failed: stop the child (ours, we have its handle) and clean up.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	os.Remove(l.pidFile())
	if msg == "" {
		msg = "serve process exited without a report"
	}
	return nil, fmt.Errorf("lab serve: %s%s", strings.TrimPrefix(msg, "error "), l.logTail())
}

func (l *Lab) logTail() string {
	b, err := os.ReadFile(l.logFile())
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\n" + l.logFile() + ":\n  " + strings.Join(lines, "\n  ")
}

// DownReport tells what Down found and removed.
type DownReport struct {
	Stopped    int      // pid of the serve process stopped, 0 if none
	Namespaces []string // namespaces deleted
	Notes      []string // things left alone, and why
}

// Nothing reports whether Down found no lab at all.
func (r *DownReport) Nothing() bool { return r.Stopped == 0 && len(r.Namespaces) == 0 }

// Down stops the serve process (only if the pid file names a live process
// that is this lab's serve process) and deletes the lab's namespaces and
// run files. A lab that is not there is not an error.
func (l *Lab) Down(ctx context.Context) (*DownReport, error) {
	rep := &DownReport{}
	var errs []error
	if pid, start, err := readPidFile(l.pidFile()); err == nil {
		if l.isServeProcess(pid, start) {
			if err := stopProcess(ctx, pid, start); err != nil {
				errs = append(errs, err)
			} else {
				rep.Stopped = pid
			}
		} else if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("pid file %s names process %d, which is not this lab's serve process: left alone", l.pidFile(), pid))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		rep.Notes = append(rep.Notes, err.Error())
	}
	rep.Namespaces = l.Namespaces()
	if err := l.deleteNamespaces(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{l.pidFile(), l.logFile(), l.UAPISocket(Client), l.UAPISocket(VPNServer)} {
		os.Remove(p)
	}
	return rep, errors.Join(errs...)
}

// stopProcess sends SIGTERM, waits up to 5 s, then SIGKILL.
func stopProcess(ctx context.Context, pid int, start string) error {
	gone := func() bool {
		state, st, err := procStat(pid)
		return err != nil || st != start || state == "Z"
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if gone() {
			return nil
		}
		return fmt.Errorf("stop serve process %d: %w", pid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !gone() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(100 * time.Millisecond)
			if !gone() {
				return fmt.Errorf("serve process %d did not stop", pid)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
