// Package testns holds what the root tests share to keep the host clean:
// finding, emptying and removing their own network namespaces, and
// sweeping those an earlier run left when it was killed before its
// cleanup, and checking that the host's own namespace is untouched
// (HostState). Only tests import it; the product never does.
package testns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/netnsconf"
)

// Dir is where named network namespaces are mounted.
const Dir = "/run/netns"

// Own lists the namespaces whose name starts with prefix.
func Own(prefix string) []string {
	entries, _ := os.ReadDir(Dir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// Delete removes a named namespace (like `ip netns del`); a missing one
// is not an error.
func Delete(name string) error {
	p := filepath.Join(Dir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// KillIn kills, by pid, the processes inside the named namespace (only
// ever the tests' own daemons) and returns their pids.
func KillIn(name string) []int {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	var killed []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, unix.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	return killed
}

// Stale lists the names in dir that match re, whose first submatch is
// the pid of a test process that no longer exists: what a run killed
// before its cleanup (a timeout panic runs none) left behind.
func Stale(dir string, re *regexp.Regexp) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil || len(m) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || unix.Kill(pid, 0) == nil {
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

// SweepStale kills what runs in the stale namespaces matching re and
// removes them, and their /etc/netns directories if tunroute wrote
// only a resolv.conf there.
func SweepStale(re *regexp.Regexp) {
	for _, name := range Stale(Dir, re) {
		KillIn(name)
		if err := Delete(name); err != nil {
			fmt.Fprintf(os.Stderr, "removing the stale namespace %s: %v\n", name, err)
		}
	}
	for _, name := range Stale("/etc/netns", re) {
		RemoveEtc(name)
	}
}

// RemoveEtc removes /etc/netns/NAME if it holds only a resolv.conf that
// tunroute wrote.
func RemoveEtc(name string) {
	dir := filepath.Join("/etc/netns", name)
	p := filepath.Join(dir, "resolv.conf")
	if b, err := os.ReadFile(p); err == nil && netnsconf.Ours(b) {
		os.Remove(p)
	}
	os.Remove(dir) // only when empty
}
