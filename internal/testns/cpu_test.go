package testns

import (
	"os"
	"testing"
	"time"
)

// TestCPUFiguresAgree: the two sources of CPU time, read of the same
// process, tell the same after it burned some CPU (within /proc's 10 ms
// ticks and the time between the reads).
func TestCPUFiguresAgree(t *testing.T) {
	start := SelfCPU()
	x := 0
	for SelfCPU()-start < 200*time.Millisecond {
		for i := 0; i < 1e6; i++ {
			x += i
		}
	}
	_ = x
	self := SelfCPU()
	proc := ProcessCPU(t, os.Getpid())
	after := SelfCPU()
	if self-proc > 50*time.Millisecond || proc-after > 50*time.Millisecond {
		t.Errorf("/proc says %s, getrusage %s..%s", proc, self, after)
	}
	// /proc counts user and system time in whole ticks, each rounded
	// down: it may say up to two ticks less than getrusage.
	if proc < 200*time.Millisecond-20*time.Millisecond {
		t.Errorf("/proc says %s after at least 200ms of CPU", proc)
	}
}
