package daemon

import (
	"encoding/json"
	"errors"
	"time"
)

// A plan on the control socket: `tunroute plan` asks the daemon that works
// on its namespace with its config, which plans from what its watchers
// keep (on a host with a full BGP table, without streaming it from the
// kernel again) exactly as the command would (the same engine call); the
// command prints the answer. A plan changes nothing, so it is answered
// outside the loop, beside a repair.

// PlanAnswer is a plan the daemon made for a command.
type PlanAnswer struct {
	Plan    string   `json:"plan"`
	Notes   []string `json:"notes,omitempty"`
	Pending bool     `json:"pending"`
	Error   string   `json:"error,omitempty"`
}

// ErrOtherConfig: the daemon works with another config (the command plans
// by itself).
var ErrOtherConfig = errors.New("tunroute run works with another config")

// otherConfig answers a request for another config than the daemon's.
var otherConfig = answer{Error: ErrOtherConfig.Error(), OtherConfig: true}

// planFor answers a plan request for config.
func (d *Daemon) planFor(config string) answer {
	if !sameFile(config, d.e.ConfigFile()) {
		return otherConfig
	}
	d.count(&d.status.Plans)
	s, c, err := d.e.PlanConfig(true)
	if err != nil {
		return answer{Plan: &PlanAnswer{Error: err.Error()}}
	}
	defer s.Close()
	return answer{Plan: &PlanAnswer{Plan: c.Text(), Notes: c.Notes, Pending: !c.Empty()}}
}

// AskPlan asks the daemon working on netns for a plan of config (an
// absolute path). ErrNotRunning and ErrOtherConfig: plan by yourself.
func AskPlan(runDir, netns, config string, timeout time.Duration) (*PlanAnswer, error) {
	a, err := ask(runDir, netns, request{Request: "plan", Config: config}, timeout)
	switch {
	case err != nil:
		return nil, err
	case a.Plan == nil:
		return nil, errors.New("tunroute run answered without a plan")
	case a.Plan.Error != "":
		return a.Plan, errors.New(a.Plan.Error)
	}
	return a.Plan, nil
}

// ObserveAnswer is what the daemon read of the system for `tunroute
// status` (the states of the namespace and its domains, as snapshots).
type ObserveAnswer struct {
	States  map[string]json.RawMessage `json:"states"`
	Domains []string                   `json:"domains"`
	Error   string                     `json:"error,omitempty"`
}

// observeFor answers an observe request: the read status makes (what a
// plan of the config depends on, plain routes), from the routes the
// watchers keep.
func (d *Daemon) observeFor(config string) answer {
	if !sameFile(config, d.e.ConfigFile()) {
		return otherConfig
	}
	d.count(&d.status.StatusReads)
	cfg, err := d.e.LoadConfig()
	if err != nil {
		return otherConfig // the command says why
	}
	f, err := d.e.LoadFacts()
	if err != nil {
		return otherConfig
	}
	s, err := d.e.ObserveForPlan(cfg, f, false)
	if err != nil {
		return answer{Observed: &ObserveAnswer{Error: err.Error()}}
	}
	defer s.Close()
	a := &ObserveAnswer{States: map[string]json.RawMessage{}, Domains: s.Domains}
	for ns, st := range s.Observed {
		b, err := json.Marshal(st)
		if err != nil {
			return answer{Observed: &ObserveAnswer{Error: err.Error()}}
		}
		a.States[ns] = b
	}
	return answer{Observed: a}
}

// AskObserve asks the daemon working on netns for the read `tunroute
// status` makes of config. ErrNotRunning and ErrOtherConfig: read by
// yourself.
func AskObserve(runDir, netns, config string, timeout time.Duration) (*ObserveAnswer, error) {
	a, err := ask(runDir, netns, request{Request: "observe", Config: config}, timeout)
	if err != nil {
		return nil, err
	}
	if a.Observed == nil {
		return nil, errors.New("tunroute run answered without what it read")
	}
	if a.Observed.Error != "" {
		return nil, errors.New(a.Observed.Error)
	}
	return a.Observed, nil
}

// ask sends one JSON request and reads the answer.
func ask(runDir, netns string, r request, timeout time.Duration) (*answer, error) {
	path := SocketPath(runDir, netns)
	line, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	a, err := exchange{path: path, line: line, dial: timeout, deadline: time.Now().Add(timeout)}.do()
	if err != nil {
		return nil, err
	}
	if err := a.verdict(); err != nil {
		return nil, err
	}
	return a, nil
}
