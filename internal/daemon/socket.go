package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/netnsname"
)

// The control socket: one request line ("status", "reload", "release", or a JSON
// object: a hook's call, see hook.go), one JSON answer line. It is 0600
// under the run directory, and the peer's credentials are checked too (a
// socket file's mode is not enough when the directory is shared): only
// root, or the daemon's own user.

// SocketPath is the control socket of the daemon that works on netns.
func SocketPath(runDir, netns string) string {
	if runDir == "" {
		runDir = engine.DefaultRunDir
	}
	return filepath.Join(runDir, "daemon", netnsname.Name(netns).Key()+".sock")
}

type answer struct {
	Status   *Status        `json:"status,omitempty"`
	Hook     *HookAnswer    `json:"hook,omitempty"`
	Plan     *PlanAnswer    `json:"plan,omitempty"`
	Apply    *ApplyAnswer   `json:"apply,omitempty"`
	Observed *ObserveAnswer `json:"observed,omitempty"`
	// OtherConfig: a plan was asked for another config than the daemon's.
	OtherConfig bool   `json:"other_config,omitempty"`
	Error       string `json:"error,omitempty"`
	// NotRunning: the daemon stopped before it took a hook's call (the
	// hook applies by itself).
	NotRunning bool `json:"not_running,omitempty"`
	// Released answers "release": whether the daemon held the kill
	// switch's table (it no longer does until its next check).
	Released *bool `json:"released,omitempty"`
}

type server struct {
	ln   *net.UnixListener
	path string
	done chan struct{}
}

func (s *server) Close() error {
	err := s.ln.Close()
	<-s.done
	os.Remove(s.path)
	return err
}

// listen serves the control socket. A socket left by a daemon that was
// killed is replaced; one a live daemon answers on is not.
func (d *Daemon) listen() (*server, error) {
	path := SocketPath(d.e.RunDir, d.e.Netns)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another tunroute run works on %s (it answers on %s)", netnsname.Word(d.e.Netns), path)
	}
	os.Remove(path)
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s := &server{ln: ln, path: path, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return s, nil
}

func (d *Daemon) serve(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	enc := json.NewEncoder(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// The request is read first, so the refusal reaches the client
	// (instead of a broken pipe on its write).
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest+1)).ReadString('\n')
	if len(line) > maxRequest {
		enc.Encode(answer{Error: fmt.Sprintf("request longer than %d bytes; nothing was changed", maxRequest)})
		return
	}
	if err != nil {
		return
	}
	if err := peerAllowed(c); err != nil {
		enc.Encode(answer{Error: err.Error()})
		return
	}
	if strings.HasPrefix(strings.TrimSpace(line), "{") {
		enc.Encode(d.serveJSON(line))
		return
	}
	switch strings.TrimSpace(line) {
	case "status":
		st := d.Status()
		enc.Encode(answer{Status: &st})
	case "release":
		// A command of another process is about to apply (hold.go).
		held := d.releaseForCommand()
		enc.Encode(answer{Released: &held})
	case "reload":
		var a answer
		if err := d.Reload(); err != nil {
			a.Error = err.Error()
		}
		st := d.Status()
		a.Status = &st
		enc.Encode(a)
	default:
		enc.Encode(answer{Error: fmt.Sprintf("unknown request %.80q (status, reload, release, or a hook's JSON call)", strings.TrimSpace(line))})
	}
}

// peerAllowed lets root and the daemon's own user in.
func peerAllowed(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not talk to tunroute run (root only)", cred.Uid)
	}
	return nil
}

// ErrNotRunning: no daemon answers for the namespace.
var ErrNotRunning = errors.New("tunroute run is not running")

// Ask sends one request to the daemon that works on netns.
func Ask(runDir, netns, request string) (*Status, error) {
	path := SocketPath(runDir, netns)
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, ErrNotRunning
		}
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	if _, err := fmt.Fprintf(c, "%s\n", request); err != nil {
		return nil, err
	}
	var a answer
	if err := json.NewDecoder(c).Decode(&a); err != nil {
		return nil, fmt.Errorf("tunroute run at %s: %w", path, err)
	}
	if a.Error != "" {
		return a.Status, errors.New(a.Error)
	}
	return a.Status, nil
}

// Text renders a status for people.
func (s *Status) Text() string {
	var b strings.Builder
	sync := "in sync with the config"
	if !s.InSync {
		sync = "NOT in sync with the config"
	}
	fmt.Fprintf(&b, "tunroute run: up %s, %s\n", s.Uptime, sync)
	fmt.Fprintf(&b, "  watching: %s\n", strings.Join(s.Watching, ", "))
	if s.KillSwitchHeld {
		b.WriteString("  kill switch: held (nft flush ruleset skips its table)\n")
	}
	fmt.Fprintf(&b, "  events: %d (%d that can matter), %d resyncs after lost events, %d checks\n", s.Events, s.Relevant, s.Resyncs, s.Checks)
	if s.Plans > 0 || s.Applies > 0 || s.StatusReads > 0 {
		fmt.Fprintf(&b, "  made for the commands: %d plans, %d applies, %d status reads\n", s.Plans, s.Applies, s.StatusReads)
	}
	if n := s.RouteReadsCached + s.RouteReadsKernel; n > 0 {
		fmt.Fprintf(&b, "  route reads: %d of %d from what the watchers kept, %d from the kernel\n", s.RouteReadsCached, n, s.RouteReadsKernel)
	}
	if len(s.Repairs) == 0 {
		b.WriteString("  repairs: none\n")
	} else {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(s.Repairs)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.Repairs[k]))
		}
		fmt.Fprintf(&b, "  repairs: %s\n", strings.Join(parts, ", "))
	}
	if s.Hooks > 0 {
		fmt.Fprintf(&b, "  VPN hooks through the daemon: %d (last: %s)\n", s.Hooks, s.LastHook)
	} else {
		b.WriteString("  VPN hooks through the daemon: none\n")
	}
	for _, f := range s.Fights {
		fmt.Fprintf(&b, "  fighting over (repairs backed off): %s\n", f)
	}
	if s.LastError != "" {
		fmt.Fprintf(&b, "  last error: %s\n", s.LastError)
	}
	for _, h := range s.Health {
		held := ""
		if h.Suppressed {
			held = ", held down: flapping"
		}
		fmt.Fprintf(&b, "  health %s: %s%s since %s (%s)\n", h.Identity, h.State, held, h.LastChange.Format(time.RFC3339), h.Why)
		for _, t := range h.Targets {
			line := fmt.Sprintf("    %s: rtt %s, loss %.0f%%", t.Target.String(), t.RTT.Round(time.Microsecond), 100*t.Loss)
			if t.LastErr != "" {
				line += ", last error: " + t.LastErr
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
