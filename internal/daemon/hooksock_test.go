package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/engine"
)

// socketOnly is a daemon that serves its control socket, and a loop that
// hands the hook calls it receives to the test (which answers them, or
// not), instead of applying them.
type socketOnly struct {
	d      *Daemon
	runDir string
	cfg    string
	calls  chan hookCall
}

func newSocketOnly(t *testing.T) *socketOnly {
	dir := t.TempDir()
	s := &socketOnly{runDir: filepath.Join(dir, "run"), cfg: filepath.Join(dir, "tunroute.yaml"), calls: make(chan hookCall, 16)}
	if err := os.WriteFile(s.cfg, []byte("vpns: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.d = New(Options{Engine: engine.New("", s.cfg, s.runDir), Log: testLog(t)})
	srv, err := s.d.listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return s
}

// loop passes the daemon's hook calls to the test until it ends.
func (s *socketOnly) loop(t *testing.T) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case c := <-s.d.hooks:
				s.calls <- c
			case <-done:
				return
			}
		}
	}()
}

func (s *socketOnly) call() *engine.ValidHook {
	return &engine.ValidHook{Kind: "openvpn", Verb: "up", VPN: "work", Config: s.cfg,
		Env: map[string]string{"script_type": "up", "dev": "tun0"}}
}

// raw sends one line on the socket and returns the answer's error.
func (s *socketOnly) raw(t *testing.T, line string) string {
	t.Helper()
	c, err := net.Dial("unix", SocketPath(s.runDir, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go fmt.Fprint(c, line) // a refused oversized request is not read to its end
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to %.60q: %v", line, err)
	}
	var a answer
	if err := json.Unmarshal([]byte(l), &a); err != nil {
		t.Fatalf("answer %q: %v", l, err)
	}
	if a.Hook != nil || a.Status != nil {
		t.Errorf("answer to %.60q carries a result: %s", line, l)
	}
	return a.Error
}

func (s *socketOnly) noCall(t *testing.T, what string) {
	t.Helper()
	select {
	case c := <-s.calls:
		t.Errorf("%s reached the loop: %+v", what, c.hook)
	default:
	}
}

// TestHookRequestAnswered: a hook's call reaches the loop as sent, and
// the loop's answer (said line, plan, notes, error) reaches the hook.
func TestHookRequestAnswered(t *testing.T) {
	s := newSocketOnly(t)
	s.loop(t)
	sent := s.call()
	sent.Env["route_network_1"] = "10.99.0.0"
	go func() {
		c := <-s.calls
		if c.hook.Kind != sent.Kind || c.hook.Verb != sent.Verb || c.hook.VPN != sent.VPN || c.hook.Config != sent.Config ||
			len(c.hook.Env) != 3 || c.hook.Env["route_network_1"] != "10.99.0.0" {
			c.reply <- HookAnswer{Error: fmt.Sprintf("the call arrived changed: %+v", c.hook)}
			return
		}
		if time.Until(c.deadline) < 5*time.Second || time.Until(c.deadline) > 10*time.Second {
			c.reply <- HookAnswer{Error: fmt.Sprintf("deadline %v away, want about 10s", time.Until(c.deadline))}
			return
		}
		c.reply <- HookAnswer{Said: "vpn work (openvpn up) on tun0", Plan: "+ route\n", Notes: []string{"a note"}}
	}()
	a, err := AskHook(s.runDir, "", sent, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Said != "vpn work (openvpn up) on tun0" || a.Plan != "+ route\n" || len(a.Notes) != 1 {
		t.Errorf("answer: %+v", a)
	}
	go func() {
		c := <-s.calls
		c.reply <- HookAnswer{Said: "vpn work", Error: "apply failed, nothing was changed: boom"}
	}()
	a, err = AskHook(s.runDir, "", sent, 10*time.Second)
	if err == nil || err.Error() != "apply failed, nothing was changed: boom" || a == nil || a.Said != "vpn work" {
		t.Errorf("a failed call: %+v %v", a, err)
	}
}

// TestBadHookRequests: malformed, unknown, oversized or foreign requests
// get an error that says what is wrong, and never reach the loop.
func TestBadHookRequests(t *testing.T) {
	s := newSocketOnly(t)
	s.loop(t)
	other := filepath.Join(t.TempDir(), "other.yaml")
	os.WriteFile(other, []byte("vpns: []\n"), 0o644)
	ok := `"kind":"openvpn","verb":"up","vpn":"work","env":{"dev":"tun0"}`
	for _, c := range []struct{ name, line, want string }{
		{"truncated JSON", `{"request":"hook","hook":{` + "\n", "malformed request"},
		{"not an object", `{"request":["hook"]}` + "\n", "malformed request"},
		{"unknown field", `{"request":"hook","hook":{` + ok + `,"config":"` + s.cfg + `"},"sudo":true}` + "\n", `unknown field "sudo"`},
		{"two values", `{"request":"hook","hook":{` + ok + `,"config":"` + s.cfg + `"}} {}` + "\n", "more than one JSON value"},
		{"unknown request", `{"request":"format-disk"}` + "\n", `unknown request "format-disk"`},
		{"hook without call", `{"request":"hook"}` + "\n", `"hook" without its call`},
		{"unknown kind", `{"request":"hook","hook":{"kind":"wireguard","verb":"up","vpn":"w","config":"` + s.cfg + `"}}` + "\n", `"wireguard" is not a VPN tunroute has a hook for`},
		{"unknown verb", `{"request":"hook","hook":{"kind":"openvpn","verb":"reboot","vpn":"work","config":"` + s.cfg + `"}}` + "\n", `script_type="reboot": not an OpenVPN script type`},
		{"no vpn", `{"request":"hook","hook":{"kind":"tinc","verb":"tinc-up","config":"` + s.cfg + `"}}` + "\n", "no vpn named"},
		{"another config", `{"request":"hook","hook":{` + ok + `,"config":"` + other + `"}}` + "\n", "works with the config " + s.cfg + ", but the hook was given " + other},
		{"oversized", `{"request":"hook","hook":{"kind":"openvpn","env":{"x":"` + strings.Repeat("a", maxRequest) + `"}}}` + "\n", "request longer than 1048576 bytes"},
		{"plain unknown", "reboot\n", `unknown request "reboot"`},
	} {
		got := s.raw(t, c.line)
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: answer %s, want an error with %q", c.name, got, c.want)
		}
		s.noCall(t, c.name)
	}
	// The same refusal through the client.
	call := s.call()
	call.Config = other
	if _, err := AskHook(s.runDir, "", call, 5*time.Second); err == nil || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), s.cfg) {
		t.Errorf("another config: %v", err)
	}
	// A link to the daemon's config is its config.
	link := filepath.Join(t.TempDir(), "link.yaml")
	os.Symlink(s.cfg, link)
	call.Config = link
	go func() { c := <-s.calls; c.reply <- HookAnswer{Said: "ok"} }()
	if a, err := AskHook(s.runDir, "", call, 5*time.Second); err != nil || a.Said != "ok" {
		t.Errorf("a link to the daemon's config: %+v %v", a, err)
	}
}

// TestHookTimeouts: a daemon that does not take the call, or does not
// answer, fails the hook with a clear message within its timeout; a call
// the loop takes after the deadline is dropped, not applied.
func TestHookTimeouts(t *testing.T) {
	s := newSocketOnly(t) // no loop: the daemon is busy
	t0 := time.Now()
	_, err := AskHook(s.runDir, "", s.call(), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "busy until the hook's deadline; nothing was changed") {
		t.Errorf("busy daemon: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the hook waited %v", d)
	}
	// A socket that takes connections and never answers.
	dir := t.TempDir()
	path := SocketPath(dir, "")
	os.MkdirAll(filepath.Dir(path), 0o700)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	if _, err := AskHook(dir, "", s.call(), 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not answer within 200ms; the hook did not apply by itself") {
		t.Errorf("a mute daemon: %v", err)
	}
	// The loop takes a call whose caller gave up: dropped before any
	// reading of the config or the kernel (d.cfg is nil here).
	a := s.d.hook(hookCall{hook: s.call(), deadline: time.Now().Add(-time.Millisecond)})
	if !strings.Contains(a.Error, "deadline passed before tunroute run could take it; nothing was changed") {
		t.Errorf("a late call: %+v", a)
	}
}

// TestHookWithoutDaemon: no socket, or one left by a killed daemon: the
// hook is told to apply by itself.
func TestHookWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	call := &engine.ValidHook{Kind: "openvpn", Verb: "up", VPN: "work"}
	if _, err := AskHook(dir, "", call, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no socket: %v", err)
	}
	path := SocketPath(dir, "")
	os.MkdirAll(filepath.Dir(path), 0o700)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: a killed daemon's
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if _, err := AskHook(dir, "", call, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("a dead daemon's socket: %v", err)
	}
}

// TestHookWhileStopping: a daemon that stops before its loop takes the
// call tells the hook so at once, and the hook applies by itself.
func TestHookWhileStopping(t *testing.T) {
	s := newSocketOnly(t) // no loop
	done := make(chan error, 1)
	go func() {
		_, err := AskHook(s.runDir, "", s.call(), 20*time.Second)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	close(s.d.stopped) // Run returned
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRunning) {
			t.Errorf("a stopping daemon: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hook still waits for a daemon that stopped")
	}
}
