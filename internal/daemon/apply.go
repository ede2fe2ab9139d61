package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tunroute/tunroute/internal/plan"
)

// An apply on the control socket: plain `tunroute apply` (no --check, no
// --confirm) with tunroute run working on its namespace and config is
// made by the daemon, in its loop between two repairs: it reads the
// config file again (the user just edited it; a broken one is refused and
// the old one stays in force), plans from the routes its watchers keep,
// and applies all-or-nothing, as the command would. The command prints
// the answer: the plan, the notes, and what was applied.

type applyCall struct {
	reply chan ApplyAnswer
}

// ApplyAnswer is what the daemon did for `tunroute apply`.
type ApplyAnswer struct {
	Plan  string   `json:"plan,omitempty"`
	Notes []string `json:"notes,omitempty"`
	// Applied is the command's last line ("Applied: ..."), empty when
	// there was nothing to do.
	Applied string `json:"applied,omitempty"`
	Error   string `json:"error,omitempty"`
	// stopping: the daemon stopped before it took the call.
	stopping bool
}

// applyFor answers an apply request for config.
func (d *Daemon) applyFor(config string) answer {
	if !sameFile(config, d.e.ConfigFile()) {
		return otherConfig
	}
	c := applyCall{reply: make(chan ApplyAnswer, 1)}
	select {
	case d.applies <- c:
	case <-d.stopped:
		return answer{Error: ErrNotRunning.Error(), NotRunning: true}
	}
	a := <-c.reply
	return answer{Apply: &a}
}

// apply runs in the loop.
func (d *Daemon) apply() ApplyAnswer {
	unlock, err := d.e.Lock()
	if err != nil {
		return ApplyAnswer{Error: err.Error()}
	}
	defer unlock()
	stamp := stampOf(d.e.ConfigFile())
	cfg, err := d.e.LoadConfig()
	if err != nil {
		return ApplyAnswer{Error: err.Error()}
	}
	f, err := d.e.LoadFacts()
	if err != nil {
		return ApplyAnswer{Error: err.Error()}
	}
	s, err := d.e.ObserveForPlan(cfg, f, true)
	if err != nil {
		return ApplyAnswer{Error: err.Error()}
	}
	defer s.Close()
	c, err := s.Plan(cfg, f)
	if err != nil {
		return ApplyAnswer{Error: err.Error()}
	}
	// The config is the one in force from now on, applied or not (as
	// after an apply by hand, which the daemon follows).
	d.cfg, d.cfgStamp = cfg, stamp
	a := ApplyAnswer{Plan: c.Text(), Notes: c.Notes}
	if c.Empty() {
		return a
	}
	start := time.Now()
	if _, err := s.Apply(c); err != nil {
		var rb *plan.RollbackError
		if errors.As(err, &rb) {
			a.Error = fmt.Sprintf("apply failed and rolling it back failed too: %v", err)
		} else {
			a.Error = fmt.Sprintf("apply failed, nothing was changed: %v", err)
		}
		d.setError(err)
		return a
	}
	a.Applied = fmt.Sprintf("Applied: %s in %s.\n", c.Done(), time.Since(start).Round(time.Microsecond))
	d.log.Info("applied for tunroute apply", "plan", c.Plan.Text())
	return a
}

// AskApply asks the daemon working on netns to apply config (an absolute
// path). ErrNotRunning and ErrOtherConfig: apply by yourself. The answer
// comes with the error of a failed apply, to be printed too.
func AskApply(runDir, netns, config string, timeout time.Duration) (*ApplyAnswer, error) {
	path := SocketPath(runDir, netns)
	line, err := json.Marshal(request{Request: "apply", Config: config})
	if err != nil {
		return nil, err
	}
	a, err := exchange{
		path: path, line: line, dial: timeout, deadline: time.Now().Add(timeout),
		unsent: "; nothing was applied",
		late:   fmt.Sprintf("tunroute run (%s) did not answer within %s (see its log and `tunroute status`)", path, timeout),
	}.do()
	if err != nil {
		return nil, err
	}
	if err := a.verdict(); err != nil {
		return nil, err
	}
	switch {
	case a.Apply == nil:
		return nil, fmt.Errorf("tunroute run at %s answered without the apply's result", path)
	case a.Apply.Error != "":
		return a.Apply, errors.New(a.Apply.Error)
	}
	return a.Apply, nil
}
