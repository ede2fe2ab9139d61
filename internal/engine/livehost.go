package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tunroute/tunroute/internal/atomicfile"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/state"
)

// LiveHost is the real machine: the kernel through internal/kernel, and
// files on disk.
type LiveHost struct {
	// Routes, if set, serves plans' reads of the routes from what the
	// last read found, while the watchers that follow it (a daemon's)
	// report nothing that can change it (kernel.RouteCache).
	Routes *kernel.RouteCache
}

func (l LiveHost) Open(netns string) (Handle, error) {
	h, err := kernel.Open(netns)
	if err != nil {
		return nil, err
	}
	return liveHandle{h, l.Routes}, nil
}

func (LiveHost) CurrentNamespace() (string, error)             { return kernel.CurrentNamespace() }
func (LiveHost) NamespaceOwner(name string) (string, error)    { return kernel.NamespaceOwner(name) }
func (LiveHost) ListNamespaces() ([]string, error)             { return kernel.ListNamespaces() }
func (LiveHost) DomainNamespaces(top string) ([]string, error) { return kernel.DomainNamespaces(top) }
func (LiveHost) CreateNamespace(name, top string) error        { return kernel.CreateNamespace(name, top) }
func (LiveHost) DeleteNamespace(name, top string) error        { return kernel.DeleteNamespace(name, top) }
func (LiveHost) MoveLink(dev, from, to string) error           { return kernel.MoveLink(dev, from, to) }
func (LiveHost) SetSysctls(netns string, v map[string]string) error {
	return kernel.SetSysctls(netns, v)
}

func (LiveHost) ReadFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil && b == nil {
		b = []byte{}
	}
	return b, err
}

// WriteFile writes through a temporary file, synced and renamed, so a
// reader sees the old content or the new, never a part.
func (LiveHost) WriteFile(path string, data []byte, perm uint32) error {
	if data == nil {
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		os.Remove(filepath.Dir(path)) // only succeeds when empty
		return err
	}
	if perm == 0 {
		perm = 0o644
	}
	return atomicfile.Write(path, data, fs.FileMode(perm))
}

type liveHandle struct {
	h      *kernel.Handle
	routes *kernel.RouteCache
}

func (l liveHandle) Observe(compact bool) (*state.State, error) {
	o := kernel.ObserveOptions{CompactRoutes: compact}
	if compact {
		o.Cache = l.routes // a plan's whole read (a config with route lists)
	}
	return l.h.ObserveWith(o)
}
func (l liveHandle) Execute(ops []state.Op) ([]bool, error) { return l.h.Execute(ops) }
func (l liveHandle) SetProgress(fn func(done, total int))   { l.h.SetProgress(fn) }
func (l liveHandle) Close() error                           { return l.h.Close() }
