package kernel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/google/nftables/expr"
	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// Observe's side of tunroute's nftables table. Only that table is read:
// the chain dump (the kernel cannot filter it by table) is skipped message
// by message on the table attribute before anything else is decoded, and
// rules and set elements are dumped with the kernel filtering by table.
//
// A rule reads back from the record in its userdata, checked against what
// the kernel holds: the record is encoded again and must give exactly the
// rule's expressions and set elements. A rule without a record, or with a
// record its expressions do not match (edited by hand, or by a tool that
// does not know the record), reads back as UnknownRule, which no desired
// rule equals, so the planner replaces the table.

// UnknownRule starts the comment of a rule in tunroute's table that
// tunroute did not write as it stands.
const UnknownRule = "unknown rule (edited by hand?)"

// readTable dump attempts before giving up on a ruleset that keeps
// changing.
const nftReadAttempts = 5

// readFirewall reads tunroute's table, nil if it does not exist. The
// caller holds h.mu.
func (h *Handle) readFirewall() (*state.Firewall, error) {
	c, err := h.nfConn()
	if err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) {
			return nil, nil // no nfnetlink in this kernel: no table either
		}
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		fw, err := readTableOnce(c)
		if err == nil {
			return fw, nil
		}
		h.dropNF()
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil // no nf_tables in this kernel
		}
		if !errors.Is(err, errDumpInterrupted) || attempt == nftReadAttempts {
			return nil, fmt.Errorf("nftables table inet %s: %w", state.FirewallTable, err)
		}
		if c, err = h.nfConn(); err != nil {
			return nil, err
		}
	}
}

// readTableOnce reads the table between two reads of the ruleset's
// generation, and reports errDumpInterrupted if a transaction came
// between.
func readTableOnce(c *conn) (*state.Firewall, error) {
	gen, err := c.nftGen()
	if err != nil {
		return nil, err
	}
	fw, err := readTable(c)
	if err != nil {
		return nil, err
	}
	if again, err := c.nftGen(); err != nil {
		return nil, err
	} else if again != gen {
		return nil, errDumpInterrupted
	}
	return fw, nil
}

func readTable(c *conn) (*state.Firewall, error) {
	flags, ok, err := c.nftTable()
	if err != nil || !ok {
		return nil, err
	}
	fw := &state.Firewall{}
	if flags&unix.NFT_TABLE_F_DORMANT != 0 {
		// A dormant table filters nothing: the kill switch is off. No
		// desired firewall has this chain, so the planner replaces it.
		fw.Chains = append(fw.Chains, state.Chain{Name: "(table dormant: disabled by hand?)"})
	}
	chains, err := c.nftChains()
	if err != nil {
		return nil, fmt.Errorf("chains: %w", err)
	}
	fw.Chains = append(fw.Chains, chains...)
	rules, err := c.nftRules()
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	elems := map[string][]setElem{}
	setElems := func(name string) ([]setElem, error) {
		if es, ok := elems[name]; ok {
			return es, nil
		}
		es, err := c.nftSetElems(name)
		if err != nil {
			return nil, fmt.Errorf("elements of set %s: %w", name, err)
		}
		elems[name] = es
		return es, nil
	}
	for _, kr := range rules {
		i := slices.IndexFunc(fw.Chains, func(ch state.Chain) bool { return ch.Name == kr.chain })
		if i < 0 {
			continue // a chain created after the chain dump: the generation check retries
		}
		r, err := kr.fwRule(setElems)
		if err != nil {
			return nil, err
		}
		fw.Chains[i].Rules = append(fw.Chains[i].Rules, r)
	}
	return fw, nil
}

// fwRule reads the rule back from its record, or returns an UnknownRule
// saying why it cannot. Only a failure to read set elements is an error.
func (kr *kernelRule) fwRule(setElems func(string) ([]setElem, error)) (state.FwRule, error) {
	comment, record := parseUserdata(kr.udata)
	unknown := func(why string) (state.FwRule, error) {
		r := state.FwRule{Comment: UnknownRule + ": " + why}
		if comment != "" {
			r.Comment += fmt.Sprintf(" (comment %q)", comment)
		}
		return r, nil
	}
	if kr.bad != nil {
		return unknown(fmt.Sprintf("handle %d has an %v that tunroute does not write", kr.handle, kr.bad))
	}
	if record == nil {
		return unknown(fmt.Sprintf("handle %d has no tunroute record", kr.handle))
	}
	var rec fwRecord
	dec := json.NewDecoder(bytes.NewReader(record))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return unknown(fmt.Sprintf("handle %d: its record does not read: %v", kr.handle, err))
	}
	r := rec.FwRule
	r.Comment = comment
	var lookups []string
	var counter *expr.Counter
	for _, x := range kr.exprs {
		switch e := x.(type) {
		case *expr.Lookup:
			lookups = append(lookups, e.SetName)
		case *expr.Counter:
			counter = e
		}
	}
	kernelSets := make([][]setElem, len(lookups))
	for k, name := range lookups {
		es, err := setElems(name)
		if err != nil {
			return state.FwRule{}, err
		}
		kernelSets[k] = es
	}
	if len(rec.FromSets) > 0 {
		// The k-th lookup is of the k-th list that is a set: one the
		// record left out, or one it has with more than one element.
		var fields []string
		for _, f := range setFields {
			if slices.Contains(rec.FromSets, f) || listField(&r, f).len() > 1 {
				fields = append(fields, f)
			}
		}
		if len(fields) != len(lookups) {
			return unknown(fmt.Sprintf("handle %d looks up %d sets, its record %d", kr.handle, len(lookups), len(fields)))
		}
		for k, field := range fields {
			if !slices.Contains(rec.FromSets, field) {
				continue
			}
			v, err := setValues(field, kernelSets[k])
			var perm []int
			if err == nil && rec.Order[field] != "" {
				perm, err = parseRuns(rec.Order[field])
			}
			if err == nil {
				err = setList(&r, field, v, perm)
			}
			if err != nil {
				return unknown(fmt.Sprintf("handle %d: set of %s: %v", kr.handle, field, err))
			}
		}
	}
	if why := sameCode(&r, kr.exprs, kernelSets); why != "" {
		return unknown(fmt.Sprintf("handle %d: %s", kr.handle, why))
	}
	if counter != nil {
		r.Packets, r.Bytes = counter.Packets, counter.Bytes
	}
	if r.Cgroup != "" {
		// systemd makes a new cgroup (a new id) when it restarts a
		// service: the rule then matches nothing until it is replaced.
		if id, err := CgroupID(r.Cgroup); err == nil && id != r.CgroupID {
			r.Comment += fmt.Sprintf(" (stale: the rule has cgroup id %d, the cgroup now is %d)", r.CgroupID, id)
		}
	}
	return r, nil
}

// sameCode reports how the kernel's expressions and set elements differ
// from what r encodes to, or "" if they do not.
func sameCode(r *state.FwRule, got []any, gotSets [][]setElem) string {
	q := *r
	q.Packets, q.Bytes = 0, 0
	var id uint32
	code, err := encodeRule(&q, func() uint32 { id++; return id })
	if err != nil {
		return "its record does not encode: " + err.Error()
	}
	want := make([]any, len(code.exprs))
	for i, x := range code.exprs {
		b, err := expr.Marshal(unix.NFPROTO_INET, x)
		if err == nil {
			var xs []any
			if xs, err = parseExprs(listElem(b)); err == nil && len(xs) == 1 {
				want[i] = xs[0]
				continue
			}
		}
		return fmt.Sprintf("its record's expression %d does not encode: %v", i+1, err)
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d expressions, its record encodes to %d", len(got), len(want))
	}
	for i := range got {
		if g, w := normExpr(got[i]), normExpr(want[i]); !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("expression %d is %#v, its record encodes to %#v", i+1, g, w)
		}
	}
	if len(gotSets) != len(code.sets) {
		return fmt.Sprintf("%d sets, its record encodes to %d", len(gotSets), len(code.sets))
	}
	for k, s := range code.sets {
		if !sameElems(gotSets[k], s.elems) {
			return fmt.Sprintf("the set of %s differs from its record", s.field)
		}
	}
	return ""
}

// listElem wraps one marshalled expression as an NFTA_LIST_ELEM.
func listElem(b []byte) []byte {
	var e encoder
	e.attr(unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, b)
	return e.b
}

// normExpr drops what differs between what tunroute sends and what the
// kernel dumps without a difference in meaning: set names and ids (the
// elements are compared instead) and counter values.
func normExpr(x any) any {
	switch e := x.(type) {
	case *expr.Lookup:
		c := *e
		c.SetName, c.SetID = "", 0
		return &c
	case *expr.Counter:
		return &expr.Counter{}
	}
	return x
}

func sameElems(a, b []setElem) bool {
	a, b = sortedElems(a), sortedElems(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].end != b[i].end || !bytes.Equal(a[i].key, b[i].key) {
			return false
		}
	}
	return true
}
