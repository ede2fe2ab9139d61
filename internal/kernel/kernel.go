package kernel

import (
	"fmt"
	"sync"

	"github.com/vishvananda/netns"
)

// Handle is an open rtnetlink connection to one network namespace. Its
// methods may be called from several goroutines; they run one at a time.
type Handle struct {
	mu   sync.Mutex
	name string
	ns   netns.NsHandle // netns.None() for the caller's own namespace
	c    *conn
	// devs caches name -> ifindex for Execute; nil when stale.
	devs map[string]int
	// nf is the NETLINK_NETFILTER socket for tunroute's nftables table,
	// opened on first use (nft.go).
	nf *conn
	// progress hears of Execute's batches (SetProgress).
	progress func(done, total int)
}

// Open opens a handle on the named network namespace (a name under
// /run/netns), or on the caller's own namespace when netns is "".
func Open(netns string) (*Handle, error) {
	ns, err := openNamespace(netns)
	if err != nil {
		return nil, err
	}
	c, err := connIn(ns)
	if err != nil {
		ns.Close()
		if netns != "" {
			return nil, fmt.Errorf("network namespace %q: %w", netns, err)
		}
		return nil, err
	}
	return &Handle{name: netns, ns: ns, c: c}, nil
}

// Namespace returns the name the handle was opened with.
func (h *Handle) Namespace() string { return h.name }

// Close releases the handle.
func (h *Handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c == nil {
		return nil
	}
	err := h.c.close()
	h.c = nil
	h.dropNF()
	if h.ns.IsOpen() {
		h.ns.Close()
	}
	return err
}

func (h *Handle) lock() (*conn, error) {
	h.mu.Lock()
	if h.c == nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("kernel handle on %s is closed", h.describe())
	}
	return h.c, nil
}

func (h *Handle) describe() string {
	if h.name == "" {
		return "the current network namespace"
	}
	return fmt.Sprintf("network namespace %q", h.name)
}
