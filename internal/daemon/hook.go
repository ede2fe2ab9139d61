package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/hook"
	"github.com/tunroute/tunroute/internal/netnsname"
)

// Hooks through the daemon: `tunroute hook` checks its call itself (a
// hostile environment never reaches the daemon), then hands it to the
// daemon working on its namespace, which records it and applies in its
// loop, between repairs (never two applies at once), and answers with
// what a hook prints. Without a daemon, the hook applies by itself.
//
// On the control socket, a hook is one JSON object on one line:
//
//	{"request":"hook","hook":{"kind":"openvpn","verb":"up","vpn":"work","env":{...},"config":"/etc/tunroute.yaml"},"deadline":"..."}
//
// answered by one JSON line whose "hook" member is a HookAnswer.

// DefaultHookTimeout is how long a hook waits for the daemon's answer;
// maxHookWait, the most it may ask for (the control socket closes a
// connection after 5 minutes).
const (
	DefaultHookTimeout = 30 * time.Second
	maxHookWait        = 4 * time.Minute
)

// maxRequest bounds a request line (a hook's environment: OpenVPN's
// pushed routes are four variables each).
const maxRequest = 1 << 20

// request is a JSON request on the control socket.
type request struct {
	Request string            `json:"request"`
	Hook    *engine.ValidHook `json:"hook,omitempty"`
	// Deadline: the hook stops waiting then; a call the daemon has not
	// begun by then is dropped, not applied behind the hook's back.
	Deadline time.Time `json:"deadline,omitempty"`
	// Config is the config file a plan is asked of (absolute).
	Config string `json:"config,omitempty"`
}

// HookAnswer is what the daemon did with a hook call: what the hook
// prints, and the error it fails with.
type HookAnswer struct {
	Ignored bool     `json:"ignored,omitempty"`
	Said    string   `json:"said,omitempty"`
	Plan    string   `json:"plan,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	Error   string   `json:"error,omitempty"`
	// stopping: the daemon stopped before it took the call.
	stopping bool
}

// hookCall is a hook call waiting for the loop.
type hookCall struct {
	hook     *engine.ValidHook
	deadline time.Time
	reply    chan HookAnswer
}

// serveJSON answers a JSON request line.
func (d *Daemon) serveJSON(line string) answer {
	var r request
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return answer{Error: fmt.Sprintf("malformed request (one JSON object on one line): %v; nothing was changed", err)}
	}
	if dec.More() {
		return answer{Error: "malformed request: more than one JSON value on the line; nothing was changed"}
	}
	switch r.Request {
	case "hook":
	case "plan":
		return d.planFor(r.Config)
	case "apply":
		return d.applyFor(r.Config)
	case "observe":
		return d.observeFor(r.Config)
	case "status", "reload":
		return answer{Error: fmt.Sprintf("request %q is a plain line, not JSON", r.Request)}
	default:
		return answer{Error: fmt.Sprintf("unknown request %q (hook, plan, apply, observe); nothing was changed", r.Request)}
	}
	if r.Hook == nil {
		return answer{Error: `malformed request: "hook" without its call; nothing was changed`}
	}
	if err := d.acceptHook(r.Hook); err != nil {
		return answer{Error: err.Error() + "; nothing was changed"}
	}
	if r.Deadline.IsZero() {
		r.Deadline = time.Now().Add(DefaultHookTimeout)
	}
	r.Deadline = minTime(r.Deadline, time.Now().Add(maxHookWait))
	a := d.Hook(r.Hook, r.Deadline)
	if a.stopping {
		return answer{Error: ErrNotRunning.Error(), NotRunning: true}
	}
	return answer{Hook: &a}
}

// acceptHook checks what can be checked of a call before it goes to the
// loop: the kind, and that the hook read the config the daemon works
// with (RecordHook checks the rest against it).
func (d *Daemon) acceptHook(v *engine.ValidHook) error {
	k, err := hook.Lookup(v.Kind)
	if err != nil {
		return fmt.Errorf("hook: %w", err)
	}
	if _, err := k.Event(v.Verb); err != nil {
		return fmt.Errorf("hook %s: %w", v.Kind, err)
	}
	if v.VPN == "" {
		return fmt.Errorf("hook %s: no vpn named", v.Kind)
	}
	if !sameFile(v.Config, d.e.ConfigFile()) {
		return fmt.Errorf("tunroute run on %s works with the config %s, but the hook was given %s: give the hook the daemon's config (-c), or run the daemon with the hook's",
			netnsname.Word(d.e.Netns), abs(d.e.ConfigFile()), v.Config)
	}
	return nil
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// sameFile: two names of one config file (a link is the file it names).
func sameFile(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if abs(a) == abs(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// Hook has the loop record a checked hook call and apply it, and waits
// for the result until deadline.
func (d *Daemon) Hook(v *engine.ValidHook, deadline time.Time) HookAnswer {
	c := hookCall{hook: v, deadline: deadline, reply: make(chan HookAnswer, 1)}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case d.hooks <- c:
	case <-d.stopped:
		return HookAnswer{stopping: true}
	case <-timer.C:
		return HookAnswer{Error: "tunroute run was busy until the hook's deadline; nothing was changed"}
	}
	select {
	case a := <-c.reply:
		return a
	case <-timer.C:
		return HookAnswer{Error: "tunroute run did not finish the hook's change by its deadline (see its log)"}
	}
}

// hook records a call in the loop (under the engine lock, like a repair).
func (d *Daemon) hook(c hookCall) HookAnswer {
	if time.Now().After(c.deadline) {
		d.log.Warn("hook dropped: its caller stopped waiting", "kind", c.hook.Kind, "verb", c.hook.Verb, "vpn", c.hook.VPN)
		return HookAnswer{Error: "the hook's deadline passed before tunroute run could take it; nothing was changed"}
	}
	d.followConfig()
	t0 := time.Now()
	res, err := d.e.RecordHook(d.cfg, c.hook)
	var a HookAnswer
	if res != nil {
		a.Ignored, a.Said = res.Ignored, res.Said
		if res.Change != nil {
			a.Plan, a.Notes = res.Change.Text(), res.Change.Notes
		}
	}
	d.mu.Lock()
	d.status.Hooks++
	if a.Said != "" {
		d.status.LastHook = a.Said
	}
	d.mu.Unlock()
	if err != nil {
		a.Error = err.Error()
		d.setError(err)
		d.log.Error("hook failed", "kind", c.hook.Kind, "verb", c.hook.Verb, "vpn", c.hook.VPN, "err", err)
		return a
	}
	var steps []string
	if res.Change != nil {
		steps = res.Change.Lines()
	}
	d.log.Info("hook", "said", a.Said, "took", time.Since(t0).Round(time.Microsecond), "plan", strings.Join(steps, "; "))
	return a
}

// AskHook hands a checked hook call to the daemon working on netns and
// waits up to timeout for it to be applied. ErrNotRunning: no daemon
// answers (the hook applies by itself). The answer comes with the error
// of a failed call, to be printed too.
func AskHook(runDir, netns string, v *engine.ValidHook, timeout time.Duration) (*HookAnswer, error) {
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	timeout = min(timeout, maxHookWait)
	path := SocketPath(runDir, netns)
	deadline := time.Now().Add(timeout)
	line, err := json.Marshal(request{Request: "hook", Hook: v, Deadline: deadline})
	if err != nil {
		return nil, err
	}
	if len(line) >= maxRequest {
		return nil, fmt.Errorf("the hook's call is %d bytes, more than tunroute run takes (%d); nothing was changed", len(line), maxRequest)
	}
	// A little beyond the deadline: the daemon's own answer to a late
	// call says more than a timeout here.
	a, err := exchange{
		path: path, line: line, dial: timeout, deadline: deadline.Add(time.Second),
		unsent: "; the hook did not apply by itself",
		late:   fmt.Sprintf("tunroute run (%s) did not answer within %s; the hook did not apply by itself (see the daemon's log and `tunroute status`)", path, timeout),
	}.do()
	if err != nil {
		return nil, err
	}
	if a.NotRunning {
		return nil, ErrNotRunning // it stopped before taking the call
	}
	if a.Error != "" {
		return nil, errors.New(a.Error)
	}
	if a.Hook == nil {
		return nil, fmt.Errorf("tunroute run at %s answered without the hook's result", path)
	}
	if a.Hook.Error != "" {
		return a.Hook, errors.New(a.Hook.Error)
	}
	return a.Hook, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
