// Package labtest runs, for the root tests, the VPN daemons that the
// lab's namespaces (package lab) do not need for `tunroute lab`: OpenVPN
// and tinc servers and clients (real binaries, started inside a lab
// namespace and tied to the test process), and the log and event waits
// that tell a test when a daemon or its scripts are done.
//
// Only tests import it; the product binary never links it (check with
// `go list -deps ./cmd/tunroute`).
package labtest
