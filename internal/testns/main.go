package testns

import (
	"fmt"
	"os"
	"testing"
)

// Main is what a root test package's TestMain does around its tests:
// as root, sweep what killed runs left and record the host's own
// namespace (HostState); run the tests; remove the tunroute binary
// (Binary); then fail the run if the host's namespace changed or if
// namespaces of this process are left.
type Main struct {
	// Name is the package, for messages.
	Name string
	// Links are name prefixes of links HostState also watches.
	Links []string
	// Namespaces is the prefix of every namespace this process creates
	// (usually with its pid); empty: not checked.
	Namespaces string
	// Sweep removes what an earlier, killed run left; nil: nothing.
	Sweep func()
	// After runs after the tests, before the checks (a report).
	After func()
}

// Run runs the tests and returns the exit code for os.Exit.
func (o Main) Run(m *testing.M) int {
	var host string
	if os.Geteuid() == 0 {
		if o.Sweep != nil {
			o.Sweep()
		}
		host = HostState(o.Links...)
	}
	code := m.Run()
	RemoveBinary()
	if o.After != nil {
		o.After()
	}
	if host == "" {
		return code
	}
	if now := HostState(o.Links...); now != host {
		fmt.Fprintf(os.Stderr, "FAIL: %s: the host's own namespace changed while these tests ran (its rules, routes marked as tunroute's, nftables tables or test links; a hook run outside the tests' namespaces would do that):\n--- before ---\n%s--- after ---\n%s", o.Name, host, now)
		code = 1
	}
	if o.Namespaces != "" {
		if left := Own(o.Namespaces); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %s: namespaces left behind: %v\n", o.Name, left)
			code = 1
		}
	}
	return code
}
