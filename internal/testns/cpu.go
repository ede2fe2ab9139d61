package testns

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The CPU time figures the tests print: of this test process (all its
// threads), or of another process (a daemon the test started).

// SelfCPU is the user + system CPU time this process has used so far.
func SelfCPU() time.Duration {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// userHZ is the unit of /proc/PID/stat's times (USER_HZ, 100 on every
// Linux architecture tunroute runs on).
const userHZ = 100

// ProcessCPU is the user + system CPU time process pid has used so far,
// from /proc/PID/stat (10 ms resolution); a failure to read it fails the
// test.
func ProcessCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (in parentheses) may hold spaces: fields are
	// counted from after it; utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / userHZ
}

// HeapAlloc is the live heap in bytes after two collections (the second
// frees what the first's finalizers released), for memory-per-item figures.
func HeapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
