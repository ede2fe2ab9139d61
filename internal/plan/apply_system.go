package plan

import (
	"errors"
	"fmt"
	"github.com/tunroute/tunroute/internal/netnsname"
	"strings"
)

// System carries out the steps of a system plan. The engine's kernel
// system does it for real; its tests use one in memory.
type System interface {
	// Executor returns the executor of a namespace (opened on demand).
	Executor(netns string) (Executor, error)
	CreateNamespace(name string) error
	DeleteNamespace(name string) error
	MoveLink(dev, from, to string) error
	SetSysctls(netns string, values map[string]string) error
	// WriteFile makes path hold data atomically (nil data: removes it).
	WriteFile(path string, data []byte, perm uint32) error
}

// Journal records what an applied system plan did, so it can be undone
// (apply --confirm that is not confirmed, or a failure half way).
type Journal struct {
	sys  System
	done []doneStep
}

// doneStep is a step that was carried out, wholly or (for kernel ops)
// in part: applied marks the ops that took effect.
type doneStep struct {
	step    Step
	applied []bool
}

// Undo reverses everything, last first. When an inverse fails, the
// others are still tried, and the error says exactly what remains.
func (j *Journal) Undo() error {
	var left []string
	var errs []error
	for i := len(j.done) - 1; i >= 0; i-- {
		d := j.done[i]
		if err := j.undoOne(d); err != nil {
			var ue *UndoError
			if errors.As(err, &ue) { // kernel ops: some were undone
				for _, r := range ue.Remains {
					left = append(left, netnsname.Word(d.step.Netns)+": "+r)
				}
				err = ue.Err
			} else {
				left = append(left, d.lines()...)
			}
			errs = append(errs, fmt.Errorf("%s: %w", netnsname.Word(d.step.Netns), err))
		}
	}
	j.done = nil
	if len(errs) == 0 {
		return nil
	}
	return &UndoError{Remains: left, Err: errors.Join(errs...)}
}

func (j *Journal) undoOne(d doneStep) error {
	if d.step.Kind != StepOps {
		return do(j.sys, d.step.Inverse())
	}
	// Fetched again: the namespace may have been deleted and created
	// anew since.
	ex, err := j.sys.Executor(d.step.Netns)
	if err != nil {
		return err
	}
	return Undo(ex, d.step.Ops, d.applied)
}

// lines are the plan lines of what a done step changed.
func (d doneStep) lines() []string {
	s := d.step
	if s.Kind == StepOps {
		var ops = s.Ops[:0:0]
		for i, op := range s.Ops {
			if i < len(d.applied) && d.applied[i] {
				ops = append(ops, op)
			}
		}
		s.Ops = ops
		var out []string
		for _, l := range s.Lines() {
			out = append(out, netnsname.Word(s.Netns)+": "+strings.TrimSpace(l))
		}
		return out
	}
	return s.Lines()
}

// UndoError is a rollback that did not complete: Remains lists, in plan
// words, the changes that are still in place.
type UndoError struct {
	Remains []string
	Err     error
}

func (e *UndoError) Error() string {
	return fmt.Sprintf("%v; these changes remain in place: %s", e.Err, strings.Join(e.Remains, "; "))
}

func (e *UndoError) Unwrap() error { return e.Err }

// ApplySystem carries out a system plan's steps in order, all-or-nothing:
// on a failure, everything done is undone in reverse order and the error
// returned (a *RollbackError if the undo failed too); on success the
// journal can undo the whole change.
func ApplySystem(sys System, sp *SystemPlan) (*Journal, error) {
	j := &Journal{sys: sys}
	for _, s := range sp.Steps {
		if s.Kind != StepOps {
			if err := do(sys, s); err != nil {
				if s.Kind == StepSysctls {
					// Some values may be written: put them all back.
					j.done = append(j.done, doneStep{step: s})
				}
				return nil, j.fail(err)
			}
			j.done = append(j.done, doneStep{step: s})
			continue
		}
		ex, err := sys.Executor(s.Netns)
		if err != nil {
			return nil, j.fail(err)
		}
		applied, err := ex.Execute(s.Ops)
		j.done = append(j.done, doneStep{step: s, applied: append([]bool(nil), applied...)})
		if err != nil {
			return nil, j.fail(fmt.Errorf("%s: %w", netnsname.Word(s.Netns), err))
		}
	}
	return j, nil
}

func (j *Journal) fail(err error) error {
	if rerr := j.Undo(); rerr != nil {
		return &RollbackError{Apply: err, Rollback: rerr}
	}
	return err
}

// do carries out one step that is not kernel ops.
func do(sys System, s Step) error {
	switch s.Kind {
	case StepCreateNamespace:
		return sys.CreateNamespace(s.Netns)
	case StepDeleteNamespace:
		return sys.DeleteNamespace(s.Netns)
	case StepMoveLink:
		return sys.MoveLink(s.Dev, s.Netns, s.To)
	case StepSysctls:
		if len(s.Sysctls) == 0 {
			return nil
		}
		return sys.SetSysctls(s.Netns, s.Sysctls)
	case StepFile:
		return sys.WriteFile(s.Path, s.Data, s.Permissions)
	case StepOps:
		ex, err := sys.Executor(s.Netns)
		if err != nil {
			return err
		}
		_, err = ex.Execute(s.Ops)
		return err
	}
	return fmt.Errorf("unknown step kind %d", s.Kind)
}
