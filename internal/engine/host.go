package engine

import (
	"github.com/tunroute/tunroute/internal/state"
)

// Host is the machine the engine observes and changes: network
// namespaces through the kernel, and the few files tunroute keeps
// (runtime facts, a domain's /etc/netns files).
type Host interface {
	// Open opens a namespace ("" is the one tunroute runs in).
	Open(netns string) (Handle, error)
	// CurrentNamespace is the name under /run/netns of the namespace
	// this process runs in ("" if it has none).
	CurrentNamespace() (string, error)
	// NamespaceOwner is a domain namespace's owner mark ("" if it is
	// not a domain tunroute made).
	NamespaceOwner(name string) (string, error)
	// ListNamespaces lists the named namespaces (/run/netns).
	ListNamespaces() ([]string, error)
	// DomainNamespaces lists the namespaces tunroute made for the domains
	// of the config applied in top.
	DomainNamespaces(top string) ([]string, error)
	// CreateNamespace makes a domain namespace of top's config;
	// DeleteNamespace removes one.
	CreateNamespace(name, top string) error
	DeleteNamespace(name, top string) error
	// MoveLink moves a device between namespaces, keeping its addresses.
	MoveLink(dev, from, to string) error
	// SetSysctls writes net.* sysctls in a namespace.
	SetSysctls(netns string, values map[string]string) error
	// ReadFile returns a file's content, nil (and no error) if it does
	// not exist.
	ReadFile(path string) ([]byte, error)
	// WriteFile makes path hold data atomically; nil data removes it
	// (and its directory, if that leaves it empty).
	WriteFile(path string, data []byte, perm uint32) error
}

// Handle is an open namespace.
type Handle interface {
	// Observe reads the namespace; compact keeps tunroute's big route
	// lists as route sets (for planning).
	Observe(compact bool) (*state.State, error)
	// Execute carries out ops in order; applied marks those that took
	// effect.
	Execute(ops []state.Op) (applied []bool, err error)
	// SetProgress hears of long Executes (nil: nothing).
	SetProgress(fn func(done, total int))
	Close() error
}
