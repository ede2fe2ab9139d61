package kernel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
	"golang.org/x/sys/unix"
)

// newOkNS creates the namespace tr-ok-k<short>-<pid> with lo up and
// deletes it when the test ends, whatever the outcome.
func newOkNS(t *testing.T, short string) string {
	t.Helper()
	needNft(t)
	name := testns.NewNS(t, fmt.Sprintf("tr-ok-k%s-%d", short, os.Getpid()))
	fakeCgroups(t, "system.slice/backup.service") // vpnUpFirewall's
	return name
}

// needOwnedTables skips the test on a kernel without owned persistent
// tables (tried on a table of the test's own).
func needOwnedTables(t *testing.T, ns string) {
	t.Helper()
	s := nfSocketIn(t, ns)
	err := nfNewTable(s, "tr-ok-probe", ownedTableFlags)
	unix.Close(s) // the table stays, an orphan
	if err == unix.EINVAL || err == unix.EOPNOTSUPP {
		t.Skipf("this kernel does not have owned persistent tables: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	nftIn(t, ns, "delete", "table", "inet", "tr-ok-probe")
}

// nftAs runs nft in ns as another process would, and returns its error.
func nftAs(ns string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func executeFW(t *testing.T, ns string, op state.Op) {
	t.Helper()
	h, err := Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Execute([]state.Op{op}); err != nil {
		t.Fatalf("%s: %v", op.Action, err)
	}
}

func holdFW(t *testing.T, ns string) *FirewallHold {
	t.Helper()
	f, err := HoldFirewall(ns)
	if err != nil {
		t.Fatalf("HoldFirewall: %v", err)
	}
	t.Cleanup(func() { f.Release() })
	return f
}

// tableFlagsIn reads the table's flags from the kernel (nft 1.0 does not
// print the persist flag).
func tableFlagsIn(t *testing.T, ns string) uint32 {
	t.Helper()
	h, err := Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := h.nfConn()
	if err != nil {
		t.Fatal(err)
	}
	flags, ok, err := c.nftTable()
	if err != nil || !ok {
		t.Fatalf("reading the table's flags: %v (exists: %v)", err, ok)
	}
	return flags
}

// TestHoldKeepsTableFromFlush: the table an apply makes carries the owner
// and persist flags; once held, another process's nft flush ruleset
// skips it and its nft delete table is refused; an apply in the holding
// process goes through the hold; released, the table stays until the
// next flush.
func TestHoldKeepsTableFromFlush(t *testing.T) {
	ns := newOkNS(t, "hold")
	needOwnedTables(t, ns)
	fw := vpnUpFirewall()
	executeFW(t, ns, fwOp(state.Add, fw, nil))
	if f := tableFlagsIn(t, ns); f != nftTableFPersist {
		t.Fatalf("the table an apply made (the apply's socket closed) has flags %#x, want persist only (an orphan)", f)
	}
	hold := holdFW(t, ns)
	if !hold.Owns() {
		t.Fatal("the hold does not own the table")
	}
	for i := 0; i < 3; i++ {
		if err := nftAs(ns, "flush", "ruleset"); err != nil {
			t.Fatal(err)
		}
	}
	h, err := Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	checkTable(t, h, ns, "after nft flush ruleset under the hold", fw)
	if err := nftAs(ns, "delete", "table", "inet", state.FirewallTable); err == nil {
		t.Error("nft delete table deleted the held table")
	}
	if err := nftAs(ns, "add", "chain", "inet", state.FirewallTable, "foreign"); err == nil {
		t.Error("another process added a chain to the held table")
	}
	// An apply in the holding process goes through the hold's socket.
	next := killSwitchVariant(1)
	if _, err := h.Execute([]state.Op{fwOp(state.Replace, next, fw)}); err != nil {
		t.Fatalf("replace through the hold: %v", err)
	}
	if err := nftAs(ns, "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	checkTable(t, h, ns, "replaced through the hold, then flushed", next)
	if !hold.Owns() {
		t.Error("the hold lost the table it replaced")
	}
	// An apply as from another process (the hold out of this process's
	// registry) is refused, and says why.
	holds.Lock()
	delete(holds.m, ns)
	holds.Unlock()
	_, err = h.Execute([]state.Op{fwOp(state.Replace, fw, next)})
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "another process holds table inet tunroute") {
		t.Errorf("an apply of another socket on the held table: %v, want EPERM with the reason", err)
	}
	hold.Release()
	if f := tableFlagsIn(t, ns); f != nftTableFPersist {
		t.Errorf("the released table has flags %#x, want persist only", f)
	}
	if err := nftAs(ns, "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	if got := observeFW(t, h); got != nil {
		t.Errorf("a released (orphan) table survived a flush: %+v", got)
	}
}

// TestApplyWithoutHold: with nobody holding the table, applies from new
// sockets (one per command, as `tunroute apply` and `down` make) add,
// replace and delete it, and an orphan is flushed like any table.
func TestApplyWithoutHold(t *testing.T) {
	ns := newOkNS(t, "nohold")
	needOwnedTables(t, ns)
	fw := vpnUpFirewall()
	next := killSwitchVariant(1)
	executeFW(t, ns, fwOp(state.Add, fw, nil))
	executeFW(t, ns, fwOp(state.Replace, next, fw))
	h, err := Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	checkTable(t, h, ns, "replaced by a second apply", next)
	// The handle that applied let the table go: another process may
	// change it (an orphan).
	if err := nftAs(ns, "add", "chain", "inet", state.FirewallTable, "foreign"); err != nil {
		t.Errorf("the table stayed owned after the apply: %v", err)
	}
	nftIn(t, ns, "delete", "chain", "inet", state.FirewallTable, "foreign")
	executeFW(t, ns, fwOp(state.Delete, next, nil))
	if got := observeFW(t, h); got != nil {
		t.Fatalf("after the delete: %+v", got)
	}
	executeFW(t, ns, fwOp(state.Add, fw, nil))
	nftIn(t, ns, "flush", "ruleset")
	if got := observeFW(t, h); got != nil {
		t.Errorf("an orphan survived the flush: %+v", got)
	}
}

// TestHoldCycle: hold, release, hold again (the orphan is claimed by a
// new socket each time); a second hold (another socket) is refused
// while the first owns the table; without a table, a hold makes the
// next apply's table owned.
func TestHoldCycle(t *testing.T) {
	ns := newOkNS(t, "cycle")
	needOwnedTables(t, ns)
	empty, err := HoldFirewall(ns)
	if err != nil {
		t.Fatalf("holding without a table: %v", err)
	}
	if empty.Owns() {
		t.Error("a hold owns a table that does not exist")
	}
	if out := nftIn(t, ns, "list", "tables"); strings.Contains(out, state.FirewallTable) {
		t.Errorf("holding made a table: %s", out)
	}
	fw := vpnUpFirewall()
	executeFW(t, ns, fwOp(state.Add, fw, nil)) // through the hold
	if !empty.Owns() {
		t.Error("the table the apply made through the hold is not the hold's")
	}
	if err := nftAs(ns, "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	if out := nftIn(t, ns, "list", "tables"); !strings.Contains(out, state.FirewallTable) {
		t.Fatal("the table made through the hold was flushed")
	}
	empty.Release()
	for i := 0; i < 3; i++ {
		f, err := HoldFirewall(ns)
		if err != nil {
			t.Fatalf("hold %d: %v", i+1, err)
		}
		if !f.Owns() {
			t.Fatalf("hold %d owns nothing", i+1)
		}
		// Another socket cannot claim it meanwhile.
		s := nfSocketIn(t, ns)
		if err := nfNewTable(s, state.FirewallTable, ownedTableFlags); err != unix.EPERM {
			t.Errorf("hold %d: another socket claiming: %v, want EPERM", i+1, err)
		}
		unix.Close(s)
		if err := nftAs(ns, "flush", "ruleset"); err != nil {
			t.Fatal(err)
		}
		f.Release()
		f.Release() // harmless
		if f.Held() {
			t.Error("released hold still held")
		}
	}
	h, err := Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	checkTable(t, h, ns, "after three hold/release cycles", fw)
}

// TestHoldUpgradesOldTable: a table an older tunroute made (no flags)
// cannot be claimed; the hold makes the same table again with the flags
// in one transaction.
func TestHoldUpgradesOldTable(t *testing.T) {
	ns := newOkNS(t, "old")
	needOwnedTables(t, ns)
	fw := vpnUpFirewall()
	h, err := Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	resolved := mustResolve(t, fw)
	h.mu.Lock()
	c, err := h.nfConn()
	if err == nil {
		tx := newTxn(c)
		if err = tx.addTable(resolved, 0); err == nil {
			var failed []nftFailure
			if failed, err = tx.commit(); err == nil && len(failed) > 0 {
				err = &nftError{failed: failed}
			}
		}
	}
	h.dropNF()
	h.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if f := tableFlagsIn(t, ns); f != 0 {
		t.Fatalf("the old table has flags %#x", f)
	}
	hold := holdFW(t, ns)
	if !hold.Owns() {
		t.Fatal("the hold does not own the upgraded table")
	}
	if f := tableFlagsIn(t, ns); f != ownedTableFlags {
		t.Errorf("the upgraded table has flags %#x, want owner and persist", f)
	}
	if err := nftAs(ns, "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	checkTable(t, h, ns, "upgraded, then flushed", fw)
}

func mustResolve(t *testing.T, fw *state.Firewall) *state.Firewall {
	t.Helper()
	out, err := resolveCgroups(fw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOldKernelFallback: a kernel that refuses the flags (EINVAL before
// Linux 5.12, EOPNOTSUPP before 6.9) gets the transaction again without
// them, and later tables are made without them; a hold is refused.
func TestOldKernelFallback(t *testing.T) {
	defer ownedTables.Store(ownedTables.Load())
	for _, errno := range []unix.Errno{unix.EINVAL, unix.EOPNOTSUPP} {
		ownedTables.Store(0)
		var tried []uint32
		failed, err := commitWithFlags(func(flags uint32) ([]nftFailure, error) {
			tried = append(tried, flags)
			if flags != 0 {
				return []nftFailure{{What: addTableWhat, Err: &Error{Errno: errno}}, {What: "add chain output", Err: &Error{Errno: unix.ENOENT}}}, nil
			}
			return nil, nil
		})
		if err != nil || len(failed) > 0 {
			t.Fatalf("%v: %v %v", errno, failed, err)
		}
		if len(tried) != 2 || tried[0] != ownedTableFlags || tried[1] != 0 {
			t.Errorf("%v: tried flags %v, want [%#x 0]", errno, tried, ownedTableFlags)
		}
		if yes, ok := OwnedTablesSupported(); yes || !ok {
			t.Errorf("%v: supported=%v known=%v after the refusal", errno, yes, ok)
		}
		if tableFlags() != 0 {
			t.Errorf("%v: later tables made with %#x", errno, tableFlags())
		}
		if _, err := HoldFirewall(""); !errors.Is(err, ErrOwnedTablesUnsupported) {
			t.Errorf("%v: hold: %v", errno, err)
		}
	}
	// Another refusal (a rule the kernel does not take) is not taken for
	// an old kernel.
	ownedTables.Store(0)
	calls := 0
	failed, _ := commitWithFlags(func(flags uint32) ([]nftFailure, error) {
		calls++
		return []nftFailure{{What: "add rule 1 of chain output", Err: &Error{Errno: unix.EOPNOTSUPP}}}, nil
	})
	if calls != 1 || len(failed) != 1 || tableFlags() == 0 {
		t.Errorf("a rule's EOPNOTSUPP: %d calls, %v, flags %#x", calls, failed, tableFlags())
	}
}

// withoutOwnedTables runs fn as on a kernel without owned persistent
// tables (tables are made without flags, as an older tunroute made them).
func withoutOwnedTables(fn func()) {
	old := ownedTables.Load()
	ownedTables.Store(-1)
	defer ownedTables.Store(old)
	fn()
}
