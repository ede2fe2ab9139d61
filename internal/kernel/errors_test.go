package kernel

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// routeIn reports whether ip shows a route to dst in table.
func routeIn(t *testing.T, ns, dst string, table uint32) bool {
	return strings.TrimSpace(ipn(t, ns, "-4", "route", "show", "table", fmt.Sprint(table), "exact", dst)) != ""
}

func checkApplied(t *testing.T, ns string, routes []*state.Route, applied, want []bool) {
	t.Helper()
	if fmt.Sprint(applied) != fmt.Sprint(want) {
		t.Errorf("applied = %v, want %v", applied, want)
	}
	for i, r := range routes {
		if r == nil {
			continue
		}
		if got := routeIn(t, ns, r.Dst.String(), r.Table); got != want[i] {
			t.Errorf("op %d (%s): ip shows it: %v, want %v", i, r, got, want[i])
		}
	}
}

func TestExecuteErrorMapping(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "err")
	ipScript(t, ns, vethVA)
	h := openT(t, ns)
	r := func(dst string) *state.Route {
		return owned(100, state.RouteUnicast, dst, via("10.1.0.254", "va"))
	}

	t.Run("failures inside one batch", func(t *testing.T) {
		noDev := owned(100, state.RouteUnicast, "10.12.0.0/16", state.Nexthop{Index: 9999})
		routes := []*state.Route{r("10.10.0.0/16"), r("10.11.0.0/16"), noDev, r("10.13.0.0/16"), r("10.10.0.0/16"), r("10.14.0.0/16")}
		applied, err := h.Execute(ops(state.Add, anys(routes)...))
		// The kernel keeps going after op 2 within the batch; op 4 is a
		// duplicate of op 0 (so ip shows its route: do not ask).
		routes[4] = nil
		checkApplied(t, ns, routes, applied, []bool{true, true, false, true, false, true})
		var oe *OpError
		if !errors.As(err, &oe) || oe.Index != 2 || oe.Later != 1 || !errors.Is(err, unix.ENODEV) {
			t.Fatalf("error = %#v", err)
		}
		want := "add route 10.12.0.0/16 table 100: no such device"
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
	})

	t.Run("no batch after a failed one", func(t *testing.T) {
		defer func(n int) { h.c.maxMsgs = n }(h.c.maxMsgs)
		h.c.maxMsgs = 2
		unreach := owned(state.TableMain, state.RouteUnicast, "0.0.0.0/1", via("10.8.0.1", "va"))
		routes := []*state.Route{r("10.20.0.0/16"), r("10.21.0.0/16"), unreach, r("10.23.0.0/16"), r("10.24.0.0/16"), r("10.25.0.0/16")}
		applied, err := h.Execute(ops(state.Add, anys(routes)...))
		checkApplied(t, ns, routes, applied, []bool{true, true, false, true, false, false})
		want := "add route 0.0.0.0/1 via 10.8.0.1 dev va table main: network is unreachable"
		if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, unix.ENETUNREACH) {
			t.Errorf("error %q does not start with %q", err, want)
		}
	})

	t.Run("unknown device name", func(t *testing.T) {
		bad := owned(100, state.RouteUnicast, "10.32.0.0/16", via("", "nosuch0"))
		routes := []*state.Route{r("10.30.0.0/16"), r("10.31.0.0/16"), bad, r("10.33.0.0/16")}
		applied, err := h.Execute(ops(state.Add, anys(routes)...))
		checkApplied(t, ns, routes, applied, []bool{true, true, false, false})
		if err == nil || !strings.HasPrefix(err.Error(), "add route 10.32.0.0/16 dev nosuch0 table 100: device \"nosuch0\"") ||
			!errors.Is(err, ErrNotFound) {
			t.Errorf("error = %v", err)
		}
	})

	t.Run("mixed objects", func(t *testing.T) {
		dup := &state.Addr{Dev: "va", Prefix: pfx("10.1.0.1/24"), Proto: state.Proto}
		rule := ownedRule(4, 500, func(r *state.Rule) { r.Table = 100 })
		list := []state.Op{{Action: state.Add, Route: r("10.40.0.0/16")}, {Action: state.Add, Rule: rule},
			{Action: state.Add, Addr: dup}, {Action: state.Add, Route: r("10.41.0.0/16")}}
		applied, err := h.Execute(list)
		if fmt.Sprint(applied) != "[true true false true]" || !errors.Is(err, unix.EEXIST) ||
			!strings.HasPrefix(err.Error(), "add address 10.1.0.1/24 dev va: file exists") {
			t.Errorf("Execute = %v, %v", applied, err)
		}
		if !strings.Contains(ipn(t, ns, "rule", "show"), "500:") {
			t.Error("rule 500 missing")
		}
	})
}

func anys[T any](list []T) []any {
	out := make([]any, len(list))
	for i, x := range list {
		out[i] = x
	}
	return out
}
