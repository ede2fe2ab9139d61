package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// Execute's side of tunroute's nftables table (state.Op.Firewall). Each op
// is one nf_tables transaction, which the kernel applies whole or not at
// all: Add creates the table with all its chains, sets and rules; Replace
// deletes the table and creates the new one in the same transaction, so
// the old rules hold until the new ones do; Delete deletes the table.

// CgroupRoot is where the cgroup v2 hierarchy is mounted; a rule's Cgroup
// path is resolved under it to the cgroup's id (its inode number). Empty
// means /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid system.
var CgroupRoot = ""

func cgroupRoot() (string, error) {
	if CgroupRoot != "" {
		return CgroupRoot, nil
	}
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(d, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return d, nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// nftSetElemsPerMsg bounds the elements per message: a netlink attribute
// is at most 64 KiB.
const nftSetElemsPerMsg = 512

var (
	nfHooks = map[string]uint32{
		"prerouting":  unix.NF_INET_PRE_ROUTING,
		"input":       unix.NF_INET_LOCAL_IN,
		"forward":     unix.NF_INET_FORWARD,
		"output":      unix.NF_INET_LOCAL_OUT,
		"postrouting": unix.NF_INET_POST_ROUTING,
	}
	nfPolicies   = map[string]uint32{"drop": 0, "accept": 1} // NF_DROP, NF_ACCEPT
	nfChainTypes = map[string]bool{"filter": true, "route": true, "nat": true}
)

// nftError is a transaction the kernel refused: the first refused message
// with the kernel's reason.
type nftError struct {
	failed []nftFailure
}

func (e *nftError) Error() string {
	f := e.failed[0]
	s := f.What + ": " + f.Err.Error()
	if n := len(e.failed) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more refused)", n)
	}
	return s + "; nothing of the transaction took effect"
}

func (e *nftError) Unwrap() error { return e.failed[0].Err }

// firewall carries out the firewall op i in one transaction.
func (x *executor) firewall(i int) error {
	op := &x.ops[i]
	fw := op.Firewall
	if op.Action != state.Delete {
		var err error
		if fw, err = resolveCgroups(fw); err != nil {
			return err
		}
	}
	// A hold of this process owns the table: only its socket may
	// change it (nft_owner.go).
	hold, c := heldConn(x.h.name)
	if hold != nil {
		defer hold.mu.Unlock()
	} else {
		var err error
		if c, err = x.h.nfConn(); err != nil {
			return err
		}
	}
	failed, err := commitWithFlags(func(flags uint32) ([]nftFailure, error) {
		t := newTxn(c)
		var err error
		switch op.Action {
		case state.Add:
			err = t.addTable(fw, flags)
		case state.Replace:
			t.delTable()
			err = t.addTable(fw, flags)
		case state.Delete:
			t.delTable()
		default:
			err = fmt.Errorf("%s is not supported for the firewall", op.Action)
		}
		if err != nil {
			return nil, buildError{err}
		}
		return t.commit()
	})
	var be buildError
	if errors.As(err, &be) {
		return be.error // the transaction could not be encoded
	}
	if err != nil {
		// The kernel's answer was lost. It handles a transaction within
		// the sendmsg, so the table now says what happened.
		if hold != nil {
			hold.broken()
		}
		x.h.dropNF()
		now, rerr := x.h.readFirewall()
		switch {
		case rerr != nil:
			return fmt.Errorf("%w; whether the change took effect is unknown (reading the table back: %v)", err, rerr)
		case firewallDone(op, now):
			x.applied[i] = true
			return nil
		}
		return fmt.Errorf("%w; the change did not take effect", err)
	}
	if len(failed) > 0 {
		if failed[0].Err.Errno == unix.EPERM {
			return fmt.Errorf("%w (another process holds table inet %s: a `tunroute run` on this namespace lets it go when `tunroute apply` or `down` asks)", &nftError{failed: failed}, state.FirewallTable)
		}
		return &nftError{failed: failed}
	}
	x.applied[i] = true
	switch {
	case hold != nil:
		hold.owns = op.Action != state.Delete && tableFlags() != 0
	case op.Action != state.Delete:
		// The handle's socket owns the table now: let it go, so that a
		// hold (this daemon's, or the next one's) can claim it. The
		// table stays (persist).
		x.h.dropNF()
	}
	return nil
}

// firewallDone reports whether the table now is what op makes it.
func firewallDone(op *state.Op, now *state.Firewall) bool {
	if op.Action == state.Delete {
		return now == nil
	}
	return now != nil && now.Equal(op.Firewall)
}

// resolveCgroups returns fw with the id of every rule's cgroup filled in
// (a copy if any was missing).
func resolveCgroups(fw *state.Firewall) (*state.Firewall, error) {
	out := fw
	for ci := range fw.Chains {
		for ri := range fw.Chains[ci].Rules {
			r := &fw.Chains[ci].Rules[ri]
			if r.Cgroup == "" || r.CgroupID != 0 {
				continue
			}
			id, err := CgroupID(r.Cgroup)
			if err != nil {
				return nil, fmt.Errorf("rule %d of chain %s (%s): %w", ri+1, fw.Chains[ci].Name, r, err)
			}
			if out == fw {
				out = copyFirewall(fw)
			}
			out.Chains[ci].Rules[ri].CgroupID = id
		}
	}
	return out, nil
}

func copyFirewall(fw *state.Firewall) *state.Firewall {
	c := &state.Firewall{Chains: make([]state.Chain, len(fw.Chains))}
	for i, ch := range fw.Chains {
		ch.Rules = append([]state.FwRule(nil), ch.Rules...)
		c.Chains[i] = ch
	}
	return c
}

// CgroupID returns the id of the cgroup v2 at path (relative to
// CgroupRoot), the number nftables' `socket cgroupv2` compares with.
func CgroupID(p string) (uint64, error) {
	clean := path.Clean("/" + p)
	if clean == "/" || clean != "/"+strings.Trim(p, "/") {
		return 0, fmt.Errorf("cgroup %q: not a clean path below the cgroup root", p)
	}
	root, err := cgroupRoot()
	if err != nil {
		return 0, fmt.Errorf("cgroup %q: %w", p, err)
	}
	var st unix.Stat_t
	full := filepath.Join(root, clean)
	if err := unix.Stat(full, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, fmt.Errorf("cgroup %q does not exist (no %s): %w", p, full, fs.ErrNotExist)
		}
		return 0, fmt.Errorf("cgroup %q: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("cgroup %q: %s is not a directory", p, full)
	}
	return st.Ino, nil
}

func (t *nftTxn) nextSetID() uint32 {
	t.setID++
	return t.setID
}

func (t *nftTxn) delTable() {
	off := t.msg(unix.NFT_MSG_DELTABLE, 0, "delete table inet "+state.FirewallTable)
	t.e.str(unix.NFTA_TABLE_NAME, state.FirewallTable)
	t.e.end(off)
}

// addTableWhat is the table message's description (flagsRefused finds
// it by it).
const addTableWhat = "add table inet " + state.FirewallTable

// addTable appends the creation of the whole table with flags (the owner
// and persist flags, nft_owner.go, or none). It fails if the table
// exists (NLM_F_EXCL): an add must not merge into somebody's table.
func (t *nftTxn) addTable(fw *state.Firewall, flags uint32) error {
	off := t.msg(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, addTableWhat)
	t.e.str(unix.NFTA_TABLE_NAME, state.FirewallTable)
	t.e.be32(unix.NFTA_TABLE_FLAGS, flags)
	t.e.end(off)
	for ci := range fw.Chains {
		ch := &fw.Chains[ci]
		if err := t.addChain(ch); err != nil {
			return fmt.Errorf("chain %s: %w", ch.Name, err)
		}
		for ri := range ch.Rules {
			r := &ch.Rules[ri]
			what := fmt.Sprintf("rule %d of chain %s (%s)", ri+1, ch.Name, r)
			if err := t.addRule(ch.Name, r, what); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
	}
	return nil
}

func (t *nftTxn) addChain(ch *state.Chain) error {
	if ch.Name == "" || len(ch.Name) > 255 {
		return fmt.Errorf("name %q", ch.Name)
	}
	if ch.Hook == "" && ch.Type == "" && ch.Policy == "" {
		// A regular chain: tunroute writes none, but Observe reports
		// one added by hand, and a rollback puts it back.
		off := t.msg(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, "add chain "+ch.Name)
		t.e.str(unix.NFTA_CHAIN_TABLE, state.FirewallTable)
		t.e.str(unix.NFTA_CHAIN_NAME, ch.Name)
		t.e.end(off)
		return nil
	}
	hook, ok := nfHooks[ch.Hook]
	if !ok {
		return fmt.Errorf("hook %q (want prerouting, input, forward, output or postrouting)", ch.Hook)
	}
	policy, ok := nfPolicies[ch.Policy]
	if !ok {
		return fmt.Errorf("policy %q (want accept or drop)", ch.Policy)
	}
	if !nfChainTypes[ch.Type] {
		return fmt.Errorf("type %q (want filter, route or nat)", ch.Type)
	}
	off := t.msg(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, "add "+ch.String())
	t.e.str(unix.NFTA_CHAIN_TABLE, state.FirewallTable)
	t.e.str(unix.NFTA_CHAIN_NAME, ch.Name)
	h := t.e.nest(unix.NFTA_CHAIN_HOOK)
	t.e.be32(unix.NFTA_HOOK_HOOKNUM, hook)
	t.e.be32(unix.NFTA_HOOK_PRIORITY, uint32(int32(ch.Priority)))
	t.e.endNest(h)
	t.e.be32(unix.NFTA_CHAIN_POLICY, policy)
	t.e.str(unix.NFTA_CHAIN_TYPE, ch.Type)
	t.e.end(off)
	return nil
}

func (t *nftTxn) addRule(chain string, r *state.FwRule, what string) error {
	code, err := encodeRule(r, t.nextSetID)
	if err != nil {
		return err
	}
	ud, err := ruleUserdata(r, code)
	if err != nil {
		return err
	}
	for _, s := range code.sets {
		t.addSet(s, what)
	}
	off := t.msg(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, "add "+what)
	t.e.str(unix.NFTA_RULE_TABLE, state.FirewallTable)
	t.e.str(unix.NFTA_RULE_CHAIN, chain)
	list := t.e.nest(unix.NFTA_RULE_EXPRESSIONS)
	for _, x := range code.exprs {
		b, err := expr.Marshal(unix.NFPROTO_INET, x)
		if err != nil {
			return err
		}
		el := t.e.nest(unix.NFTA_LIST_ELEM)
		t.e.raw(b)
		t.e.pad()
		t.e.endNest(el)
	}
	t.e.endNest(list)
	t.e.attr(unix.NFTA_RULE_USERDATA, ud)
	t.e.end(off)
	return nil
}

// addSet appends the creation of an anonymous constant set and its
// elements; the rule that looks it up must follow in the transaction.
func (t *nftTxn) addSet(s *anonSet, what string) {
	what = fmt.Sprintf("add the set of %s of %s", s.field, what)
	off := t.msg(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, what)
	t.e.str(unix.NFTA_SET_TABLE, state.FirewallTable)
	t.e.str(unix.NFTA_SET_NAME, "__set%d")
	flags := uint32(unix.NFT_SET_ANONYMOUS | unix.NFT_SET_CONSTANT)
	if s.interval {
		flags |= unix.NFT_SET_INTERVAL
	}
	t.e.be32(unix.NFTA_SET_FLAGS, flags)
	t.e.be32(unix.NFTA_SET_KEY_TYPE, s.keyType)
	t.e.be32(unix.NFTA_SET_KEY_LEN, s.keyLen)
	t.e.be32(unix.NFTA_SET_ID, s.id)
	d := t.e.nest(unix.NFTA_SET_DESC)
	t.e.be32(unix.NFTA_SET_DESC_SIZE, uint32(len(s.elems)))
	t.e.endNest(d)
	// NFTNL_UDATA_SET_KEYBYTEORDER, for nft's listing: interface names
	// are in host order, addresses, ports and ICMP types in network order.
	order := uint32(2)
	if s.keyType == typeIfname {
		order = 1
	}
	t.e.attr(unix.NFTA_SET_USERDATA, append([]byte{0, 4}, ne.AppendUint32(nil, order)...))
	t.e.end(off)
	for start := 0; start < len(s.elems); start += nftSetElemsPerMsg {
		off := t.msg(unix.NFT_MSG_NEWSETELEM, unix.NLM_F_CREATE, what)
		t.e.str(unix.NFTA_SET_ELEM_LIST_TABLE, state.FirewallTable)
		t.e.str(unix.NFTA_SET_ELEM_LIST_SET, "__set%d")
		t.e.be32(unix.NFTA_SET_ELEM_LIST_SET_ID, s.id)
		list := t.e.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		for _, el := range s.elems[start:min(start+nftSetElemsPerMsg, len(s.elems))] {
			n := t.e.nest(unix.NFTA_LIST_ELEM)
			k := t.e.nest(unix.NFTA_SET_ELEM_KEY)
			t.e.attr(unix.NFTA_DATA_VALUE, el.key)
			t.e.endNest(k)
			if el.end {
				t.e.be32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
			}
			t.e.endNest(n)
		}
		t.e.endNest(list)
		t.e.end(off)
	}
}
