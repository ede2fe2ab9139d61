package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/netnsname"
)

// Lock serialises the commands that change a namespace (apply, down,
// hooks): two VPN hooks firing at once must not interleave their plans.
// The lock is released by the returned function, or when the process
// exits.
func (e *Engine) Lock() (func(), error) {
	dir := filepath.Join(e.runDir(), "lock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, netnsname.Name(e.Netns).Key()), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
