package failovertest

import (
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/testns"
)

type healthProbe = compile.Probe

// runtimeLockAndSet moves the calling goroutine's thread into h for good
// (the goroutine must end without unlocking, so the thread dies with it).
func runtimeLockAndSet(h netns.NsHandle) {
	runtime.LockOSThread()
	if err := netns.Set(h); err != nil {
		panic(err)
	}
}

// inNS runs f on a thread inside the namespace (never reused after).
func inNS(t *testing.T, ns string, f func()) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtimeLockAndSet(h)
		f()
	}()
	<-done
}

// dialIn runs f, which dials, inside the namespace.
func dialIn(t *testing.T, ns string, f func()) { inNS(t, ns, f) }

// runAll runs each command in order (a cut or a heal of the lab).
func runAll(t *testing.T, cmds [][]string) {
	t.Helper()
	for _, c := range cmds {
		testns.Cmd(t, c...)
	}
}

// listenTCPIn listens on a TCP address inside the namespace.
func listenTCPIn(t *testing.T, ns, addr string) net.Listener {
	return openIn(t, ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
}

// openIn runs open inside the namespace and returns what it opened; the
// test fails if it could not.
func openIn[T any](t *testing.T, ns string, open func() (T, error)) T {
	var v T
	var err error
	inNS(t, ns, func() { v, err = open() })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// acceptAndCloseIn listens on a TCP address inside the namespace and closes
// every connection it takes: a server whose only job is to answer the
// handshake. The listener closes when the test ends.
func acceptAndCloseIn(t *testing.T, ns, addr string) {
	ln := listenTCPIn(t, ns, addr)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}
