package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// The daemon holds the kill switch's table (kernel.FirewallHold) after
// every check that leaves the namespace in sync: while it holds it,
// `nft flush ruleset` by another process skips the table and nobody else
// can delete or change it (Linux 6.9). Its own repairs and the hooks it
// applies go through the hold (the same process). A command of another
// process (`tunroute apply`, `down`) asks it to let go first ("release"
// on the control socket); the next check holds it again. When the daemon
// stops or is killed, the table stays in place (fail closed), an orphan
// the next daemon claims.

// firewallHold is the daemon's hold on its namespace's table.
type firewallHold struct {
	mu sync.Mutex
	h  *kernel.FirewallHold
	// unsupported: the kernel has no owned persistent tables (said once).
	unsupported bool
	// lastErr is the last error holding (logged when it changes).
	lastErr string
}

// liveKernel reports whether the daemon works on the real kernel (tests
// with an in-memory host have no table to hold).
func (d *Daemon) liveKernel() bool {
	_, ok := d.e.Host.(engine.LiveHost)
	return ok
}

// holdFirewall claims the table if the daemon does not hold it yet. A
// failure is logged (once while it lasts) and changes nothing: the
// table is then as safe as without a daemon.
func (d *Daemon) holdFirewall() {
	if !d.liveKernel() {
		return
	}
	fh := &d.fwHold
	fh.mu.Lock()
	defer fh.mu.Unlock()
	defer func() { d.setHeld(fh.h != nil && fh.h.Owns()) }()
	if fh.unsupported || (fh.h != nil && fh.h.Held()) {
		return
	}
	h, err := kernel.HoldFirewall(d.e.Netns)
	switch {
	case errors.Is(err, kernel.ErrOwnedTablesUnsupported):
		fh.unsupported = true
		d.log.Info("the kill switch's table is not held: nft flush ruleset deletes it until the next repair", "reason", err)
	case err != nil:
		if err.Error() != fh.lastErr {
			d.log.Warn("cannot hold the kill switch's table (nft flush ruleset may delete it until the next repair)", "err", err)
		}
		fh.lastErr = err.Error()
	default:
		fh.h = h
		fh.lastErr = ""
		d.log.Debug("holding the kill switch's table", "owns", h.Owns())
	}
}

// releaseFirewall lets the table go (it stays in place). It reports
// whether the daemon held it.
func (d *Daemon) releaseFirewall() bool {
	fh := &d.fwHold
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if fh.h == nil {
		return false
	}
	held := fh.h.Held()
	fh.h.Release()
	fh.h = nil
	d.setHeld(false)
	return held
}

func (d *Daemon) setHeld(held bool) {
	d.mu.Lock()
	d.status.KillSwitchHeld = held
	d.mu.Unlock()
}

// FirewallHeld reports whether the daemon holds the kill switch's table.
func (d *Daemon) FirewallHeld() bool {
	fh := &d.fwHold
	fh.mu.Lock()
	defer fh.mu.Unlock()
	return fh.h != nil && fh.h.Held()
}

// releaseForCommand is the control socket's "release": a command of
// another process is about to apply (it holds the engine lock). The
// table is let go now; once the command lets the engine lock go, a check
// is made (through a firewall event), which holds it again.
func (d *Daemon) releaseForCommand() bool {
	held := d.releaseFirewall()
	go func() {
		unlock, err := d.e.Lock()
		if err != nil {
			return
		}
		unlock()
		select {
		case d.events <- kernel.WatchEvent{Netns: d.e.Netns, Kind: kernel.WatchFirewall, FirewallTable: state.FirewallTable, At: time.Now()}:
		case <-d.stopped:
		}
	}()
	return held
}

// ReleaseFirewall asks the daemon that works on netns, if one runs, to
// let the kill switch's table go: a command about to change it (`tunroute
// apply`, `down`) calls it with the engine lock held, so that the daemon
// holds the table again only after the command is done. No daemon is not
// an error.
func ReleaseFirewall(runDir, netns string) error {
	path := SocketPath(runDir, netns)
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return nil // no daemon: nobody holds the table (or a dead one's orphan, anybody's)
		}
		return fmt.Errorf("asking tunroute run to let the kill switch's table go: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, "release"); err != nil {
		return fmt.Errorf("asking tunroute run to let the kill switch's table go: %w", err)
	}
	var a answer
	if err := json.NewDecoder(c).Decode(&a); err != nil {
		return fmt.Errorf("asking tunroute run at %s to let the kill switch's table go: %w", path, err)
	}
	if a.Error != "" {
		return fmt.Errorf("tunroute run would not let the kill switch's table go: %s", a.Error)
	}
	return nil
}
