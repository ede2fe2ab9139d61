package failovertest

import (
	"runtime"

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
