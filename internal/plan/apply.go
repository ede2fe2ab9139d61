package plan

import (
	"errors"
	"fmt"

	"github.com/tunroute/tunroute/internal/state"
)

// Executor carries out ops in order against a namespace. applied[i] is
// true exactly for the ops that took effect; err describes the first
// failure. internal/kernel's Handle implements it.
type Executor interface {
	Execute(ops []state.Op) (applied []bool, err error)
}

// RollbackError reports an apply that failed and whose undo failed too:
// the namespace may hold part of the change.
type RollbackError struct {
	Apply, Rollback error
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("%v; rolling back also failed: %v", e.Apply, e.Rollback)
}

func (e *RollbackError) Unwrap() error { return e.Apply }

// Apply carries out ops all-or-nothing: if any op fails, the ops that took
// effect are undone in reverse order, so tunroute's objects are as they
// were before, and the first error is returned.
func Apply(ex Executor, ops []state.Op) error {
	if len(ops) == 0 {
		return nil
	}
	applied, err := ex.Execute(ops)
	if err == nil {
		return nil
	}
	if rerr := Undo(ex, ops, applied); rerr != nil {
		return &RollbackError{Apply: err, Rollback: rerr}
	}
	return err
}

// Undo reverses the ops marked applied, last first.
func Undo(ex Executor, ops []state.Op, applied []bool) error {
	var undo []state.Op
	for i := len(ops) - 1; i >= 0; i-- {
		if i < len(applied) && applied[i] {
			undo = append(undo, ops[i].Inverse())
		}
	}
	if len(undo) == 0 {
		return nil
	}
	done, err := ex.Execute(undo)
	if err == nil {
		return nil
	}
	// Keep undoing what can be undone, one by one; report what still fails
	// and so remains in place.
	var errs []error
	var remains []string
	for i := range undo {
		if i < len(done) && done[i] {
			continue
		}
		if _, err := ex.Execute(undo[i : i+1]); err != nil {
			errs = append(errs, err)
			remains = append(remains, undo[i].Inverse().String())
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &UndoError{Remains: remains, Err: errors.Join(errs...)}
}

// All returns an applied mask that marks every op, for undoing a whole
// applied plan (the --confirm timeout).
func All(ops []state.Op) []bool {
	m := make([]bool, len(ops))
	for i := range m {
		m[i] = true
	}
	return m
}
