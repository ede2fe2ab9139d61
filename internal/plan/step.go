package plan

import (
	"bytes"
	"fmt"
	"github.com/tunroute/tunroute/internal/netnsname"
	"maps"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// StepKind says what kind of effect a step has.
type StepKind uint8

const (
	// StepOps changes kernel objects of one namespace (links, addresses,
	// routes, route sets, rules, tunroute's nftables table), in one batch.
	StepOps StepKind = iota + 1
	// StepCreateNamespace creates the domain namespace Netns (marked as
	// tunroute's).
	StepCreateNamespace
	// StepDeleteNamespace deletes the domain namespace Netns.
	StepDeleteNamespace
	// StepMoveLink moves device Dev from namespace Netns to namespace To.
	StepMoveLink
	// StepSysctls sets sysctls in namespace Netns.
	StepSysctls
	// StepFile writes (or, with Data nil, removes) the file Path.
	StepFile
)

// Step is one effect of an apply, with everything needed to print it,
// carry it out and undo it: what `plan` prints is the steps' lines, what
// `apply` does is the steps in order, and rollback runs their inverses
// in reverse order.
type Step struct {
	Kind StepKind
	// Netns is the namespace the step acts in (for a move: the one the
	// device leaves).
	Netns string

	// Ops are a StepOps step's kernel changes.
	Ops []state.Op

	// Dev and To: a StepMoveLink step moves Dev from Netns to To.
	Dev, To string

	// Sysctls are set by a StepSysctls step; PrevSysctls holds the values
	// they had (a key absent there had none: a namespace just created).
	Sysctls, PrevSysctls map[string]string

	// Path, Data and Prev: a StepFile step makes Path hold Data (nil:
	// removes it); Prev is what it held (nil: it did not exist). About
	// says what the file is for, in the plan's words.
	Path        string
	Data, Prev  []byte
	About       string
	Permissions uint32
}

// Inverse returns the step that undoes s.
func (s Step) Inverse() Step {
	switch s.Kind {
	case StepOps:
		inv := make([]state.Op, len(s.Ops))
		for i, op := range s.Ops {
			inv[len(s.Ops)-1-i] = op.Inverse()
		}
		s.Ops = inv
	case StepCreateNamespace:
		s.Kind = StepDeleteNamespace
	case StepDeleteNamespace:
		s.Kind = StepCreateNamespace
	case StepMoveLink:
		s.Netns, s.To = s.To, s.Netns
	case StepSysctls:
		back := map[string]string{}
		for k := range s.Sysctls {
			if v, ok := s.PrevSysctls[k]; ok {
				back[k] = v
			}
		}
		s.Sysctls, s.PrevSysctls = back, s.Sysctls
	case StepFile:
		s.Data, s.Prev = s.Prev, s.Data
	}
	return s
}

// Lines renders the step for people, one line per effect (a firewall
// change shows its rules on indented lines of its own).
func (s Step) Lines() []string {
	switch s.Kind {
	case StepOps:
		var b strings.Builder
		for _, op := range s.Ops {
			writeOp(&b, op)
		}
		return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	case StepCreateNamespace:
		return []string{fmt.Sprintf("+ %s (created)", netnsname.Word(s.Netns))}
	case StepDeleteNamespace:
		return []string{fmt.Sprintf("- %s (deleted)", netnsname.Word(s.Netns))}
	case StepMoveLink:
		return []string{fmt.Sprintf("> move %s from %s into %s", s.Dev, netnsname.Word(s.Netns), netnsname.Word(s.To))}
	case StepSysctls:
		var out []string
		for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
			line := fmt.Sprintf("~ sysctl %s = %s in %s", k, s.Sysctls[k], netnsname.Word(s.Netns))
			if v, ok := s.PrevSysctls[k]; ok {
				line += " (was " + v + ")"
			}
			out = append(out, line)
		}
		return out
	case StepFile:
		switch {
		case s.Data == nil:
			return []string{fmt.Sprintf("- file %s (%s)", s.Path, s.About)}
		case s.Prev == nil:
			return []string{fmt.Sprintf("+ file %s (%s)", s.Path, s.About)}
		}
		return []string{fmt.Sprintf("~ file %s (%s)", s.Path, s.About)}
	}
	return []string{"?"}
}

// Effects are the step's effects in a canonical form, one per kernel
// object or system change, in the order apply carries them out. A system
// that records what it was asked to do (the engine's tests) writes the
// same strings, so a plan can be compared with what apply did.
func (s Step) Effects() []string {
	switch s.Kind {
	case StepOps:
		out := make([]string, len(s.Ops))
		for i, op := range s.Ops {
			out[i] = OpEffect(s.Netns, op)
		}
		return out
	case StepCreateNamespace:
		return []string{"create namespace " + s.Netns}
	case StepDeleteNamespace:
		return []string{"delete namespace " + s.Netns}
	case StepMoveLink:
		return []string{MoveEffect(s.Dev, s.Netns, s.To)}
	case StepSysctls:
		var out []string
		for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
			out = append(out, SysctlEffect(s.Netns, k, s.Sysctls[k]))
		}
		return out
	case StepFile:
		return []string{FileEffect(s.Path, s.Data)}
	}
	return nil
}

// OpEffect, MoveEffect, SysctlEffect and FileEffect are the canonical
// forms of Effects.
func OpEffect(netns string, op state.Op) string { return "[" + netns + "] " + op.String() }

func MoveEffect(dev, from, to string) string {
	return fmt.Sprintf("move %s from [%s] to [%s]", dev, from, to)
}

func SysctlEffect(netns, key, value string) string {
	return fmt.Sprintf("[%s] sysctl %s=%s", netns, key, value)
}

func FileEffect(path string, data []byte) string {
	if data == nil {
		return "remove file " + path
	}
	return fmt.Sprintf("write file %s (%d bytes, %x)", path, len(data), fnv(data))
}

func fnv(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// counts adds the step to a tally of what a plan does.
func (s Step) count(t *Tally) {
	switch s.Kind {
	case StepOps:
		add, change, del := countOps(s.Ops)
		t.Added += add
		t.Changed += change
		t.Deleted += del
	case StepCreateNamespace:
		t.NamespacesCreated++
	case StepDeleteNamespace:
		t.NamespacesDeleted++
	case StepMoveLink:
		t.Moved++
	case StepSysctls:
		t.Sysctls += len(s.Sysctls)
	case StepFile:
		t.Files++
	}
}

// Tally counts what a plan does.
type Tally struct {
	Added, Changed, Deleted              int // kernel objects
	NamespacesCreated, NamespacesDeleted int
	Moved                                int // devices moved between namespaces
	Sysctls                              int
	Files                                int
}

// String says what was done, leaving out what is zero (but always the
// objects): "3 added, 0 changed, 1 deleted, 1 namespace created".
func (t Tally) String() string { return t.words(true) }

// Pending says what is to be done: "3 to add, 0 to change, 1 to delete,
// 1 namespace to create".
func (t Tally) Pending() string { return t.words(false) }

func (t Tally) words(done bool) string {
	var parts []string
	add := func(n int, always bool, thing, things, did, todo string) {
		if n == 0 && !always {
			return
		}
		w := fmt.Sprintf("%d", n)
		switch {
		case thing != "" && n == 1:
			w += " " + thing
		case thing != "":
			w += " " + things
		}
		if done {
			w += " " + did
		} else {
			w += " to " + todo
		}
		parts = append(parts, w)
	}
	add(t.Added, true, "", "", "added", "add")
	add(t.Changed, true, "", "", "changed", "change")
	add(t.Deleted, true, "", "", "deleted", "delete")
	add(t.NamespacesCreated, false, "namespace", "namespaces", "created", "create")
	add(t.NamespacesDeleted, false, "namespace", "namespaces", "deleted", "delete")
	add(t.Moved, false, "device", "devices", "moved", "move")
	add(t.Sysctls, false, "sysctl", "sysctls", "set", "set")
	add(t.Files, false, "file", "files", "changed", "change")
	return strings.Join(parts, ", ")
}

// writeOp renders one kernel op, Terraform style.
func writeOp(b *strings.Builder, op state.Op) {
	if op.Firewall != nil {
		writeFirewallOp(b, op)
		return
	}
	switch op.Action {
	case state.Add:
		fmt.Fprintf(b, "  + %s %s\n", op.Object(), objectString(op))
	case state.Delete:
		fmt.Fprintf(b, "  - %s %s\n", op.Object(), objectString(op))
	case state.Replace:
		prev := op.Inverse()
		fmt.Fprintf(b, "  ~ %s %s\n      (was %s)\n", op.Object(), objectString(op), objectString(prev))
	}
}

// sameBytes reports whether a file already holds data (nil: absent).
func sameBytes(have, want []byte) bool {
	if have == nil || want == nil {
		return have == nil && want == nil
	}
	return bytes.Equal(have, want)
}
