package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// Namespace is one namespace's part of a system plan's input.
type Namespace struct {
	Netns string
	// Owned: a namespace tunroute creates for a domain (and deletes when
	// the domain leaves the config).
	Owned bool
	// Desired is what tunroute wants there; nil when the namespace is an
	// owned one the config no longer has (everything goes).
	Desired *state.State
	// Observed is what it holds now; nil when it does not exist yet.
	Observed *state.State
	// MovesIn are devices to move in from the top namespace.
	MovesIn []string
	// Sysctls wanted in an owned namespace (forwarding).
	Sysctls map[string]string
}

// NamespacePlan is what happens to one namespace.
type NamespacePlan struct {
	Netns  string
	Create bool
	Delete bool
	// MovesIn are devices moved in from the top namespace before the
	// plan; MovesOut devices moved back to it before the namespace goes.
	MovesIn, MovesOut []string
	// Sysctls to set (those that differ), and what they were.
	Sysctls, PrevSysctls map[string]string
	Plan                 *Plan
}

// SystemPlan covers the top namespace and every domain.
type SystemPlan struct {
	Top        string
	Namespaces []NamespacePlan
}

// DiffSystem plans every namespace; the first is the top one.
func DiffSystem(nss []Namespace) (*SystemPlan, error) {
	if len(nss) == 0 {
		return nil, errors.New("no namespace to plan")
	}
	sp := &SystemPlan{Top: nss[0].Netns}
	for _, ns := range nss {
		obs := ns.Observed
		if obs == nil {
			obs = &state.State{Version: state.Version, Namespace: ns.Netns}
		}
		np := NamespacePlan{Netns: ns.Netns, Create: ns.Observed == nil && ns.Desired != nil, MovesIn: ns.MovesIn}
		for k, v := range ns.Sysctls {
			if old, ok := obs.Sysctls[k]; !ok || old != v {
				if np.Sysctls == nil {
					np.Sysctls, np.PrevSysctls = map[string]string{}, map[string]string{}
				}
				np.Sysctls[k] = v
				if ok {
					np.PrevSysctls[k] = old // a new namespace has none: it goes on undo
				}
			}
		}
		var err error
		if ns.Desired == nil {
			np.Plan = Down(obs)
			if ns.Owned {
				np.Delete = true
				for i := range obs.Links {
					l := &obs.Links[i]
					if !l.Loopback && !l.Owned() && l.Name != "lo" {
						np.MovesOut = append(np.MovesOut, l.Name)
					}
				}
			}
		} else if np.Plan, err = Diff(ns.Desired, obs); err != nil {
			return nil, fmt.Errorf("%s: %w", nsWord(ns.Netns), err)
		}
		np.Plan.Namespace = ns.Netns
		sp.Namespaces = append(sp.Namespaces, np)
	}
	sp.dropPeerDeletes()
	return sp, nil
}

// dropPeerDeletes: deleting one end of a veth pair deletes the other, so
// when both ends are to be deleted only the first deletion (in execution
// order: delete phases run last namespace first) is kept.
func (sp *SystemPlan) dropPeerDeletes() {
	gone := map[string]bool{} // "netns\x00dev" deleted by an earlier op
	for i := len(sp.Namespaces) - 1; i >= 0; i-- {
		np := &sp.Namespaces[i]
		kept := np.Plan.Ops[:0]
		for _, op := range np.Plan.Ops {
			if op.Link != nil && op.Action == state.Delete {
				if gone[np.Netns+"\x00"+op.Link.Name] {
					continue
				}
				if op.Link.Peer != "" {
					gone[op.Link.PeerNamespace+"\x00"+op.Link.Peer] = true
				}
			}
			kept = append(kept, op)
		}
		np.Plan.Ops = kept
	}
}

// Empty reports whether nothing would change anywhere.
func (sp *SystemPlan) Empty() bool {
	for _, np := range sp.Namespaces {
		if np.Create || np.Delete || len(np.MovesIn) > 0 || len(np.MovesOut) > 0 || len(np.Sysctls) > 0 || !np.Plan.Empty() {
			return false
		}
	}
	return true
}

// Counts adds up the objects added, changed and deleted everywhere.
func (sp *SystemPlan) Counts() (add, change, del int) {
	for _, np := range sp.Namespaces {
		a, c, d := np.Plan.Counts()
		add, change, del = add+a, change+c, del+d
	}
	return
}

// Text renders the system plan: each namespace's plan, with the
// namespaces created, deleted and the devices moved.
func (sp *SystemPlan) Text() string {
	if len(sp.Namespaces) == 1 && !sp.Namespaces[0].Create && !sp.Namespaces[0].Delete {
		return sp.Namespaces[0].Plan.Text()
	}
	var b strings.Builder
	if sp.Empty() {
		b.WriteString("No changes: every namespace already matches the config.\n")
		return b.String()
	}
	for _, np := range sp.Namespaces {
		switch {
		case np.Create:
			fmt.Fprintf(&b, "+ %s (created)\n", nsWord(np.Netns))
		case np.Delete:
			fmt.Fprintf(&b, "- %s (deleted)\n", nsWord(np.Netns))
		}
		for _, dev := range np.MovesIn {
			fmt.Fprintf(&b, "  > move %s from %s into %s\n", dev, nsWord(sp.Top), nsWord(np.Netns))
		}
		for _, dev := range np.MovesOut {
			fmt.Fprintf(&b, "  < move %s back to %s\n", dev, nsWord(sp.Top))
		}
		for _, k := range sortedKeys(np.Sysctls) {
			fmt.Fprintf(&b, "  ~ sysctl %s = %s in %s\n", k, np.Sysctls[k], nsWord(np.Netns))
		}
		if np.Plan.Empty() && (np.Create || np.Delete || len(np.MovesIn)+len(np.MovesOut)+len(np.Sysctls) > 0) {
			continue
		}
		b.WriteString(np.Plan.Text())
	}
	return b.String()
}

func nsWord(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}

// System carries out what a system plan needs beyond one namespace's ops.
type System interface {
	// Executor returns the executor of a namespace (opened on demand).
	Executor(netns string) (Executor, error)
	CreateNamespace(name string) error
	DeleteNamespace(name string) error
	MoveLink(dev, from, to string) error
	SetSysctls(netns string, values map[string]string) error
}

// Journal records what an applied system plan did, so it can be undone
// (apply --confirm that is not confirmed).
type Journal struct {
	undo []func() error
}

// Undo reverses everything, last first, and reports every failure.
func (j *Journal) Undo() error {
	var errs []error
	for i := len(j.undo) - 1; i >= 0; i-- {
		if e := j.undo[i](); e != nil {
			errs = append(errs, e)
		}
	}
	j.undo = nil
	return errors.Join(errs...)
}

// ApplySystem carries out a system plan all-or-nothing: namespaces are
// created, devices moved in, every namespace's additions made (top
// first), then every namespace's removals (last first), devices moved
// back and namespaces deleted. On a failure, everything done is undone in
// reverse order and the error returned; on success the journal can undo
// the whole change.
func ApplySystem(sys System, sp *SystemPlan) (*Journal, error) {
	j := &Journal{}
	undo := j.undo
	defer func() { j.undo = undo }()
	fail := func(err error) (*Journal, error) {
		j.undo = undo
		if rerr := j.Undo(); rerr != nil {
			return nil, &RollbackError{Apply: err, Rollback: rerr}
		}
		return nil, err
	}
	for _, np := range sp.Namespaces {
		if np.Create {
			if err := sys.CreateNamespace(np.Netns); err != nil {
				return fail(err)
			}
			name := np.Netns
			undo = append(undo, func() error { return sys.DeleteNamespace(name) })
		}
	}
	for _, np := range sp.Namespaces {
		for _, dev := range np.MovesIn {
			if err := sys.MoveLink(dev, sp.Top, np.Netns); err != nil {
				return fail(err)
			}
			dev, to := dev, np.Netns
			undo = append(undo, func() error { return sys.MoveLink(dev, to, sp.Top) })
		}
	}
	run := func(np NamespacePlan, ops []state.Op) error {
		if len(ops) == 0 {
			return nil
		}
		ex, err := sys.Executor(np.Netns)
		if err != nil {
			return err
		}
		applied, err := ex.Execute(ops)
		done := append([]bool(nil), applied...)
		ns := np.Netns
		undo = append(undo, func() error {
			// Fetched again: the namespace may have been deleted and
			// created anew since.
			ex, err := sys.Executor(ns)
			if err != nil {
				return err
			}
			return Undo(ex, ops, done)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", nsWord(np.Netns), err)
		}
		return nil
	}
	for _, np := range sp.Namespaces {
		if len(np.Sysctls) == 0 {
			continue
		}
		if err := sys.SetSysctls(np.Netns, np.Sysctls); err != nil {
			return fail(err)
		}
		ns, prev := np.Netns, np.PrevSysctls
		if len(prev) > 0 {
			undo = append(undo, func() error { return sys.SetSysctls(ns, prev) })
		}
	}
	for _, np := range sp.Namespaces {
		adds, _ := split(np.Plan.Ops)
		if err := run(np, adds); err != nil {
			return fail(err)
		}
	}
	// Removals in three rounds over all namespaces (last first): objects,
	// then links, then firewalls. Deleting a veth end deletes its peer and
	// everything on it, so every explicit removal must come before any
	// link goes; and the kill switch goes last.
	for round := 0; round < 3; round++ {
		for i := len(sp.Namespaces) - 1; i >= 0; i-- {
			np := sp.Namespaces[i]
			_, dels := split(np.Plan.Ops)
			if err := run(np, removalRound(dels, round)); err != nil {
				return fail(err)
			}
		}
	}
	for _, np := range sp.Namespaces {
		for _, dev := range np.MovesOut {
			if err := sys.MoveLink(dev, np.Netns, sp.Top); err != nil {
				return fail(err)
			}
			dev, from := dev, np.Netns
			undo = append(undo, func() error { return sys.MoveLink(dev, sp.Top, from) })
		}
	}
	for _, np := range sp.Namespaces {
		if np.Delete {
			if err := sys.DeleteNamespace(np.Netns); err != nil {
				return fail(err)
			}
			name := np.Netns
			undo = append(undo, func() error { return sys.CreateNamespace(name) })
		}
	}
	j.undo = undo
	return j, nil
}

// removalRound picks the removals of one round: 0 objects (rules,
// routes, addresses), 1 links, 2 the firewall.
func removalRound(dels []state.Op, round int) []state.Op {
	var out []state.Op
	for _, op := range dels {
		r := 0
		switch {
		case op.Link != nil:
			r = 1
		case op.Firewall != nil:
			r = 2
		}
		if r == round {
			out = append(out, op)
		}
	}
	return out
}

// split separates a plan's additions (and replacements) from its
// removals; Diff orders them that way.
func split(ops []state.Op) (adds, dels []state.Op) {
	for i, op := range ops {
		if op.Action == state.Delete {
			return ops[:i], ops[i:]
		}
	}
	return ops, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
