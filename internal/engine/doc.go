// Package engine is tunroute's pipeline as a library, behind every
// command, hook and (later) the daemon:
//
//	load config + facts -> observe -> compile -> plan (steps) -> apply (with undo)
//
// for the namespace tunroute works on and every routing domain it made.
// It acts on a Host: the real one (LiveHost) reaches the kernel through
// internal/kernel, the only package that does; tests use one in memory,
// so the whole pipeline, rollback included, is tested without root.
// cmd/tunroute keeps flags, printing and exit codes.
package engine
