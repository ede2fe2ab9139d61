package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ReadyFDEnv names the environment variable through which Up tells the
// serve process which file descriptor to report readiness on.
const ReadyFDEnv = "TUNROUTE_LAB_READY_FD"

// HandshakeTimeout bounds the wait for the first WireGuard handshake.
const HandshakeTimeout = 10 * time.Second

func (l *Lab) pidFile() string { return filepath.Join(l.runDir(), l.Prefix+"serve.pid") }
func (l *Lab) logFile() string { return filepath.Join(l.runDir(), l.Prefix+"serve.log") }

// UAPISocket is the path of the control socket of a role's wg0 (Client or
// VPNServer), which speaks WireGuard's UAPI protocol (get=1 / set=1).
func (l *Lab) UAPISocket(role string) string {
	return filepath.Join(l.runDir(), l.Prefix+role+"."+WGDevice+".sock")
}

// ReadyFile returns the readiness pipe passed by Up, or nil.
func ReadyFile() *os.File {
	fd, err := strconv.Atoi(os.Getenv(ReadyFDEnv))
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "ready")
}

// Serve is the lab's background process (`tunroute lab serve`): it holds
// the WireGuard devices of a built lab, runs the echo server in inet and
// serves the UAPI control sockets, until ctx ends or the lab's namespaces
// disappear. It reports "ok" or the error on ready (which may be nil) once
// the first handshake is done.
func (l *Lab) Serve(ctx context.Context, ready *os.File, logw io.Writer) (err error) {
	logger := log.New(logw, "", log.LstdFlags|log.Lmicroseconds)
	report := func(msg string) {
		if ready != nil {
			fmt.Fprintln(ready, msg)
			ready.Close()
			ready = nil
		}
	}
	defer func() {
		if err != nil {
			logger.Printf("serve: %v", err)
			report("error " + oneLine(err.Error()))
		}
	}()
	for _, r := range Roles {
		if !nsExists(l.NS(r)) {
			return fmt.Errorf("netns %s does not exist (build the lab first)", l.NS(r))
		}
	}
	if err := os.MkdirAll(l.runDir(), 0o755); err != nil {
		return err
	}
	if err := writePidFile(l.pidFile()); err != nil {
		return err
	}
	defer os.Remove(l.pidFile())

	start := time.Now()
	t, err := l.StartWireGuard(logger.Printf)
	if err != nil {
		return err
	}
	defer t.Close()
	echo, err := ListenEcho(l.NS(Inet), EchoPort)
	if err != nil {
		return err
	}
	defer echo.Close()
	for role, w := range map[string]*WG{Client: t.Client, VPNServer: t.Server} {
		stop, err := w.ServeUAPI(l.UAPISocket(role))
		if err != nil {
			return err
		}
		defer stop()
	}
	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	hs, err := t.WaitHandshake(hctx, start)
	cancel()
	if err != nil {
		return err
	}
	logger.Printf("serve: lab %s up, handshake after %v", l.Prefix, hs.Sub(start).Round(time.Millisecond))
	report(fmt.Sprintf("ok handshake=%s", hs.Sub(start).Round(time.Millisecond)))

	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			logger.Printf("serve: stopping (%v)", context.Cause(ctx))
			return nil
		case <-tick.C:
			// Someone deleted the namespaces without `lab down`: do not
			// keep them alive unseen.
			for _, r := range Roles {
				if !nsExists(l.NS(r)) {
					logger.Printf("serve: netns %s is gone; stopping", l.NS(r))
					return nil
				}
			}
		}
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// ServeUAPI listens on a unix socket at path (replacing what is there)
// and hands each connection to the device's UAPI handler, until stop.
func (w *WG) ServeUAPI(path string) (stop func(), err error) {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go w.Device().IpcHandle(c)
		}
	}()
	return func() { ln.Close(); os.Remove(path) }, nil
}

// UAPI sends one request ("get=1\n\n" or "set=1\n...\n\n") to a role's
// control socket and returns the answer.
func (l *Lab) UAPI(role, request string) (string, error) {
	c, err := net.DialTimeout("unix", l.UAPISocket(role), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return "", err
	}
	var b strings.Builder
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return b.String(), fmt.Errorf("uapi %s: %w", role, err)
		}
		if line == "\n" {
			break
		}
		b.WriteString(line)
	}
	s := b.String()
	if !strings.Contains(s, "errno=0\n") {
		return s, fmt.Errorf("uapi %s: %s", role, oneLine(strings.TrimSpace(s)))
	}
	return s, nil
}

// PeerStats returns the peers of a role's wg0, through the control socket.
func (l *Lab) PeerStats(role string) ([]PeerStats, error) {
	s, err := l.UAPI(role, "get=1\n\n")
	if err != nil {
		return nil, err
	}
	return ParseUAPI(s)
}

// pid files hold "PID STARTTIME": the start time (field 22 of
// /proc/PID/stat) guards against a recycled pid.
func writePidFile(path string) error {
	st, err := procStartTime(os.Getpid())
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %s\n", os.Getpid(), st)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readPidFile(path string) (pid int, start string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, "", fmt.Errorf("%s: malformed", path)
	}
	pid, err = strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, "", fmt.Errorf("%s: malformed pid %q", path, f[0])
	}
	return pid, f[1], nil
}

// procStat returns the state letter and start time of a process.
func procStat(pid int) (state, start string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", err
	}
	// The command name is in parentheses and may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", "", errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return "", "", errors.New("malformed /proc stat")
	}
	return f[0], f[19], nil
}

func procStartTime(pid int) (string, error) {
	_, st, err := procStat(pid)
	return st, err
}

// isServeProcess reports whether pid is alive and is the serve process of
// this lab: same start time as recorded, and a command line with "serve"
// and "--prefix PREFIX".
func (l *Lab) isServeProcess(pid int, start string) bool {
	state, st, err := procStat(pid)
	if err != nil || st != start || state == "Z" {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	serve, prefix := false, false
	for i, a := range args {
		switch {
		case a == "serve":
			serve = true
		case a == "--prefix" && i+1 < len(args) && args[i+1] == l.Prefix,
			a == "--prefix="+l.Prefix:
			prefix = true
		}
	}
	return serve && prefix
}

// ServeArgs are the arguments that make the tunroute binary run Serve for
// this lab.
func (l *Lab) ServeArgs() []string {
	args := []string{"lab", "serve", "--prefix", l.Prefix}
	if l.RunDir != "" && l.RunDir != DefaultRunDir {
		args = append(args, "--run-dir", l.RunDir)
	}
	return args
}
