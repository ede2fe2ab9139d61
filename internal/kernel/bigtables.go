package kernel

import (
	"errors"
	"fmt"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// LeftOut are the tables, per family, that an observation for route
// queries (ObserveLeavingBig) did not read because they hold more routes
// than its scope keeps whole. Of such an IPv4 table the default routes
// are read all the same: the kernel's dump gives them first (the trie's
// first leaf), and they decide among themselves which one a lookup that
// ends on one of them uses (fib_select_default).
type LeftOut struct {
	V4, V6 []uint32
}

// ObserveLeavingBig observes the namespace for answering route queries:
// the tables of scope (with RuleTables: every table a rule looks up, and
// local, main and default) are read each with a dump the kernel filters
// by table, every route of theirs (tunroute's and others'), except a
// table holding more than scope.Whole routes: its dump is given up there
// and the table is left out (LeftOut). A route query's answer from such a
// table is the kernel's to tell (RouteMatch); a full BGP table then costs
// the first Whole routes of its dump, not a million.
func (h *Handle) ObserveLeavingBig(scope *RouteScope) (*state.State, LeftOut, error) {
	c, err := h.lock()
	if err != nil {
		return nil, LeftOut{}, err
	}
	defer h.mu.Unlock()
	var left LeftOut
	s, err := h.observe(c, ObserveOptions{Routes: scope, leftOut: &left})
	if err != nil {
		return nil, LeftOut{}, fmt.Errorf("observe %s: %w", h.describe(), err)
	}
	return s, left, nil
}

// readTablesLeavingBig appends the routes of one family's tables, each
// read whole or, when it holds more than whole routes, left out.
//
// The kernel cannot stop a dump half-way but drops it with its socket,
// so each table is dumped on a socket of its own, closed once the table
// proved big: the handle's socket stays clean.
func (h *Handle) readTablesLeavingBig(out []state.Route, af uint8, tables []uint32, whole int, d *devNames, nhs setNexthops) ([]state.Route, []uint32, error) {
	var left []uint32
	for _, table := range tables {
		c, err := connIn(h.ns)
		if err != nil {
			return nil, nil, err
		}
		mark := len(out)
		big := false
		err = retryDump(func() error {
			out, big = out[:mark], false
			var pool nhPool
			seq := c.routeDumpRequest(af, table, 0)
			return c.dump(seq, func(m message) error {
				if m.typ != unix.RTM_NEWROUTE || len(m.data) < unix.SizeofRtMsg || m.data[0] != af ||
					ne.Uint32(m.data[8:])&unix.RTM_F_CLONED != 0 {
					return nil
				}
				if !c.strict && routeTable(m.data) != table {
					return nil
				}
				if len(out)-mark >= whole {
					big = true
					return errTableBig
				}
				var r state.Route
				if decodePlainRoute(m.data, &r, d, &pool, nhs) {
					out = append(out, r)
				}
				return nil
			})
		})
		// A big table's dump is not drained (c.dump leaves it on
		// errTableBig): the socket goes, and the kernel drops the dump.
		c.close()
		if big {
			kept := out[:mark]
			if af == unix.AF_INET {
				for _, r := range out[mark:] {
					if r.Dst.Bits() == 0 {
						kept = append(kept, r)
					}
				}
			}
			out = kept
			left = append(left, table)
			continue
		}
		if e, ok := err.(*Error); ok && e.Errno == unix.ENOENT {
			err = nil // no such table: no routes
		}
		if err != nil {
			return nil, nil, fmt.Errorf("routes of table %d: %w", table, err)
		}
	}
	return out, left, nil
}

// errTableBig stops the dump of a table found too big to read whole.
var errTableBig = errors.New("table too big to read whole")
