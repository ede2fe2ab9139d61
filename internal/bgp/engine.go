package bgp

import (
	"context"
	"fmt"
	"path/filepath"
)

// engine is one BGP daemon tunroute can drive: what files an instance
// needs, how to check, start, reload and stop it, and how to read its
// sessions. The process handling common to both (namespaces, pid files,
// signals, leftover routes) is in process.go.
type engine interface {
	// files are the instance's generated files, by name in its run
	// directory.
	files(s Speaker, in *instance) []genFile
	// check has the daemon's own parser check the files in in.Dir.
	check(ctx context.Context, m *Manager, in *instance) error
	// start starts the daemons and returns when they answer.
	start(ctx context.Context, m *Manager, in *instance) error
	// reload makes the running daemons take the rewritten files.
	reload(ctx context.Context, m *Manager, in *instance) error
	// pidFiles are the daemons' pid files, in the order they stop.
	pidFiles(in *instance) []string
	// shutdown asks the daemons to stop cleanly, withdrawing their
	// routes from the kernel.
	shutdown(ctx context.Context, m *Manager, in *instance) error
	// sessions reads the sessions and their routes.
	sessions(ctx context.Context, m *Manager, in *instance) ([]Session, error)
	// routeProto is the route protocol of what the daemon installs, as
	// ip(8) names it.
	routeProto() string
	// user is who the daemons run as ("" root): their run directory
	// belongs to it.
	user() string
}

// genFile is one generated file of an instance.
type genFile struct {
	name string
	data []byte
}

func engineOf(name string) (engine, error) {
	switch name {
	case "", "bird":
		return birdEngine{}, nil
	case "frr":
		return frrEngine{}, nil
	}
	return nil, fmt.Errorf("unknown BGP engine %q", name)
}

func (in *instance) path(name string) string { return filepath.Join(in.Dir, name) }
