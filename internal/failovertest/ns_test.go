package failovertest

import (
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/tunroute/tunroute/internal/compile"
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

// listenTCPIn listens on a TCP address inside the namespace.
func listenTCPIn(t *testing.T, ns, addr string) net.Listener {
	var ln net.Listener
	var err error
	inNS(t, ns, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
