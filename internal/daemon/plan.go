package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
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

// planFor answers a plan request for config.
func (d *Daemon) planFor(config string) answer {
	if !sameFile(config, d.e.ConfigFile()) {
		return answer{Error: ErrOtherConfig.Error(), OtherConfig: true}
	}
	d.mu.Lock()
	d.status.Plans++
	d.mu.Unlock()
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
	path := SocketPath(runDir, netns)
	line, err := json.Marshal(request{Request: "plan", Config: config})
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("tunroute run at %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("tunroute run at %s: %w", path, err)
	}
	var a answer
	if err := json.NewDecoder(c).Decode(&a); err != nil {
		return nil, fmt.Errorf("tunroute run at %s: %w", path, err)
	}
	switch {
	case a.OtherConfig:
		return nil, ErrOtherConfig
	case a.Error != "":
		return nil, errors.New(a.Error)
	case a.Plan == nil:
		return nil, fmt.Errorf("tunroute run at %s answered without a plan", path)
	case a.Plan.Error != "":
		return a.Plan, errors.New(a.Plan.Error)
	}
	return a.Plan, nil
}
