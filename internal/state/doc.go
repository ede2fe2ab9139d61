// Package state is tunroute's one model of kernel routing state: the links,
// addresses, routes, rules and sysctls of one network namespace.
//
// A State is plain data. It is produced by compiling a config (the desired
// state), by observing a namespace (internal/kernel) or by loading a snapshot
// file, and it is consumed by the planner (internal/plan) and by the routing
// simulator (internal/fib). Its JSON form is stable: `tunroute snapshot`
// writes it and `tunroute explain --state` reads it.
//
// Order matters where the kernel's order matters: links are kept in the
// namespace's device-list order, addresses in the kernel's per-device list
// order, routes in dump order and rules in list order (fib-semantics.md §1.1).
//
// # Reading big snapshots
//
// Parse reads the bulk of a snapshot (routes, route sets, addresses) with a
// hand-written reader (fastparse.go) and the rest with encoding/json; its
// tables come from the structs' json tags, and tests check it against
// encoding/json. It is kept because no maintained library comes close on
// a big table. `cd bench/jsonlibs && GOEXPERIMENT=jsonv2 go run . -routes
// 1000000 -repeat 2` (a snapshot of 1M IPv4 + 100k IPv6 routes, 344 MB;
// best of two sessions on a 2-core machine under load 12-15; every library
// read the same state as encoding/json):
//
//	state.Parse                  0.98 s    456 MB allocated
//	encoding/json/v2             3.91 s  1,152 MB
//	goccy/go-json v0.12.0        3.76 s  1,601 MB
//	bytedance/sonic v1.15.5      4.26 s  1,159 MB
//	encoding/json (v1 API)      14.98 s  1,555 MB (9.06 s on v2's engine)
//
// On one core (GOMAXPROCS=1, 220k routes): state.Parse 0.11 s,
// goccy/go-json 0.46 s, bytedance/sonic 0.75 s, encoding/json 0.98 s. With
// the fastest library, reading this snapshot alone (3.8 s) would miss the
// 2-second target for loading it into explain --state, which state.Parse
// and fib.New meet together.
package state
