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
package state
