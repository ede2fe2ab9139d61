package kernel

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// A kill switch that `nft flush ruleset` cannot delete. Linux 6.9 lets a
// table belong to one netlink socket (NFT_TABLE_F_OWNER): other
// processes' flushes skip it and their changes to it are refused (EPERM)
// while that socket is open. With NFT_TABLE_F_PERSIST the table stays
// when its owner's socket closes (a killed daemon leaves the kill switch
// in place: fail closed), as an orphan that anybody may change, delete,
// flush, or claim by sending the table again with the owner flag.
//
// tunroute makes its table with both flags when the kernel has them, so
// that any later apply (its batch sends the table with the owner flag)
// and any FirewallHold can claim it. A FirewallHold is a socket kept open
// that owns the table: while it is open, the table cannot be flushed or
// deleted by anybody else. An apply made in the process that holds the
// table goes through the hold's socket (the owner may change its table);
// an apply from another process (`tunroute apply`) needs the holder to
// release it first.

// Table flags (linux/netfilter/nf_tables.h; x/sys has only DORMANT).
const (
	nftTableFOwner   = 0x2
	nftTableFPersist = 0x4
	// ownedTableFlags are the flags tunroute makes its table with.
	ownedTableFlags = nftTableFOwner | nftTableFPersist
)

// ownedTables is whether the kernel has owned persistent tables:
// 0 not known yet, 1 yes, -1 no (a table was refused with the flags).
var ownedTables atomic.Int32

// ErrOwnedTablesUnsupported: the kernel is older than Linux 6.9 (no
// NFT_TABLE_F_PERSIST); the table is made without flags, and a flush
// deletes it.
var ErrOwnedTablesUnsupported = errors.New("this kernel cannot keep a table from nft flush ruleset (owned persistent tables need Linux 6.9)")

// OwnedTablesSupported reports whether the kernel took the owner and
// persist flags (known after the first table made or held); ok is false
// while it is not known.
func OwnedTablesSupported() (yes, ok bool) {
	switch ownedTables.Load() {
	case 1:
		return true, true
	case -1:
		return false, true
	}
	return false, false
}

// tableFlags is what the table is made with: the owner and persist flags
// unless the kernel refused them before.
func tableFlags() uint32 {
	if ownedTables.Load() < 0 {
		return 0
	}
	return ownedTableFlags
}

// flagsRefused reports whether failed says the kernel does not know the
// table flags: the message making the table refused with EINVAL (Linux
// < 5.12 knows only DORMANT) or EOPNOTSUPP (< 6.9: no PERSIST).
func flagsRefused(failed []nftFailure) bool {
	for _, f := range failed {
		if f.What == addTableWhat && (f.Err.Errno == unix.EINVAL || f.Err.Errno == unix.EOPNOTSUPP) {
			return true
		}
	}
	return false
}

// buildError is a transaction commitWithFlags could not encode (nothing
// was sent).
type buildError struct{ error }

// commitWithFlags runs try (encode and commit a transaction) with the
// table's flags; if the kernel refuses the flags, it remembers that and
// runs try again without them (nothing of the refused transaction took
// effect). try returns a buildError if it could not encode.
func commitWithFlags(try func(flags uint32) ([]nftFailure, error)) ([]nftFailure, error) {
	flags := tableFlags()
	failed, err := try(flags)
	if err != nil || flags == 0 {
		return failed, err
	}
	if flagsRefused(failed) {
		ownedTables.Store(-1)
		return try(0)
	}
	if len(failed) == 0 {
		ownedTables.Store(1)
	}
	return failed, nil
}

// holds are the FirewallHolds of this process by namespace name: an
// apply in the namespace goes through the hold's socket.
var holds struct {
	sync.Mutex
	m map[string]*FirewallHold
}

// FirewallHold owns tunroute's table in one namespace through a netlink
// socket it keeps open (see above). Release closes it: the table stays.
type FirewallHold struct {
	netns string
	// mu guards c: one transaction at a time on the socket.
	mu sync.Mutex
	c  *conn // nil once released
	// owns: the hold owns a table now (false: there was none, the next
	// apply through the hold makes it owned).
	owns bool
}

// HoldFirewall claims tunroute's table in the namespace netns ("" is the
// caller's own) with a socket kept open. Without a table it holds the
// socket all the same: the next apply in this process makes the table
// through it, owned. A table made by an older tunroute (no flags) is
// replaced by the same table with the flags in one atomic transaction
// (the old rules hold until the new ones do); a dormant one is left
// alone (error). It fails with ErrOwnedTablesUnsupported on a kernel
// without owned persistent tables, and with EPERM while another socket
// owns the table (another process's hold or apply).
func HoldFirewall(netns string) (*FirewallHold, error) {
	if ownedTables.Load() < 0 {
		return nil, ErrOwnedTablesUnsupported
	}
	ns, err := openNamespace(netns)
	if err != nil {
		return nil, err
	}
	defer func() {
		if ns.IsOpen() {
			ns.Close()
		}
	}()
	var c *conn
	if err := inNetns(ns, func() error {
		var err error
		c, err = newConnProto(unix.NETLINK_NETFILTER)
		return err
	}); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	f := &FirewallHold{netns: netns, c: c}
	if err := f.claim(); err != nil {
		c.close()
		return nil, err
	}
	holds.Lock()
	defer holds.Unlock()
	if holds.m == nil {
		holds.m = map[string]*FirewallHold{}
	}
	if old := holds.m[netns]; old != nil && old.Held() {
		// Cannot happen while the old one owns the table (the claim
		// would have failed with EPERM); it owned nothing then.
		old.Release()
	}
	holds.m[netns] = f
	return f, nil
}

// claimAttempts bounds the claims a stream of other transactions can
// spoil (each one changes the generation the claim is made at).
const claimAttempts = 5

// claim makes the hold's socket the table's owner: it sends the table
// with the flags, at the generation it read the table at, so that a
// table deleted in between is not made again (empty) by the claim.
func (f *FirewallHold) claim() error {
	for attempt := 1; ; attempt++ {
		gen, err := f.c.nftGen()
		if err != nil {
			return err
		}
		flags, ok, err := f.c.nftTable()
		if err != nil {
			return err
		}
		if !ok {
			f.owns = false
			return nil
		}
		var t *nftTxn
		switch {
		case flags&nftTableFPersist != 0:
			t = newTxnAt(f.c, gen)
			off := t.msg(unix.NFT_MSG_NEWTABLE, 0, addTableWhat)
			t.e.str(unix.NFTA_TABLE_NAME, state.FirewallTable)
			t.e.be32(unix.NFTA_TABLE_FLAGS, ownedTableFlags)
			t.e.end(off)
		case flags&unix.NFT_TABLE_F_DORMANT != 0:
			return fmt.Errorf("table inet %s is dormant (disabled by hand?): not claimed", state.FirewallTable)
		default:
			// An older tunroute's table: the same table again, with the
			// flags, in one transaction at the generation it was read at.
			fw, err := readTableOnce(f.c)
			if errors.Is(err, errDumpInterrupted) && attempt < claimAttempts {
				continue
			}
			if err != nil {
				return fmt.Errorf("reading table inet %s to make it again with the owner flag: %w", state.FirewallTable, err)
			}
			if fw == nil {
				continue // deleted meanwhile
			}
			t = newTxnAt(f.c, gen)
			t.delTable()
			if err := t.addTable(fw, ownedTableFlags); err != nil {
				return fmt.Errorf("making table inet %s again with the owner flag: %w", state.FirewallTable, err)
			}
		}
		failed, err := t.commit()
		if err != nil {
			return err
		}
		if len(failed) == 0 {
			ownedTables.Store(1)
			f.owns = true
			return nil
		}
		if flagsRefused(failed) {
			ownedTables.Store(-1)
			return ErrOwnedTablesUnsupported
		}
		if failed[0].What == "the transaction" && failed[0].Err.Errno == unix.ERESTART && attempt < claimAttempts {
			continue // another transaction came between the read and the claim
		}
		return &nftError{failed: failed}
	}
}

// Held reports whether the hold's socket is still open.
func (f *FirewallHold) Held() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c != nil
}

// Owns reports whether the hold owned a table when it was claimed or
// when the last apply through it made one.
func (f *FirewallHold) Owns() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c != nil && f.owns
}

// Release closes the hold's socket: the table stays, an orphan anybody
// may claim (or flush). Releasing twice is harmless.
func (f *FirewallHold) Release() error {
	holds.Lock()
	if holds.m[f.netns] == f {
		delete(holds.m, f.netns)
	}
	holds.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c == nil {
		return nil
	}
	err := f.c.close()
	f.c = nil
	f.owns = false
	return err
}

// heldConn returns the socket of this process's hold on netns, locked
// (call the returned unlock), or nil if there is none.
func heldConn(netns string) (*FirewallHold, *conn) {
	holds.Lock()
	f := holds.m[netns]
	holds.Unlock()
	if f == nil {
		return nil, nil
	}
	f.mu.Lock()
	if f.c == nil {
		f.mu.Unlock()
		return nil, nil
	}
	return f, f.c
}

// broken closes the hold's socket after a transaction whose answer was
// lost (unread answers may be left on it); the caller holds f.mu. The
// table stays, an orphan the next hold claims.
func (f *FirewallHold) broken() {
	f.c.close()
	f.c = nil
	f.owns = false
}
