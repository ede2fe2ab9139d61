package bgp

// The part of this package that acts on the system for every engine: it
// starts daemons inside a namespace, finds them by their pid files,
// stops them, and after a forced stop removes the routes they left in
// the kernel.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// How long an instance gets to come up, and to shut down cleanly
// (withdrawing its routes from the kernel) before it is killed; a
// control command gets ctlTimeout, so a hung daemon cannot hang tunroute.
const (
	startTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	ctlTimeout   = 3 * time.Second
)

// program finds one of the engines' programs.
func program(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/usr/lib/frr"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install the engine (Debian: apt-get install bird2, or frr)", name)
}

// command runs a control program with ctlTimeout and returns its output.
func command(ctx context.Context, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %v: %s", filepath.Base(argv[0]), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// spawn runs a daemon's command line in the instance's namespace,
// through `ip netns exec` (a mount namespace of its own with the domain's
// /etc/netns files, like `tunroute exec`); the daemon forks into the
// background once its configuration is read. Its early output goes to
// out (a file in the run directory).
func spawn(ctx context.Context, in *instance, out string, argv ...string) error {
	if in.Netns != "" {
		ip, err := program("ip")
		if err != nil {
			return err
		}
		argv = append([]string{ip, "netns", "exec", in.Netns}, argv...)
	}
	f, err := os.OpenFile(in.path(out), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(f.Name())
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(b))
	}
	return nil
}

// waitReady polls until ready succeeds (the daemon answers on its
// control socket) or startTimeout passes.
func waitReady(ctx context.Context, in *instance, ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not up after %s: %v", startTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// running reports whether every daemon of the instance is alive; pid is
// the first one's.
func (m *Manager) running(in *instance) (pid int, ok bool) {
	pids := livePids(in)
	files := in.engine().pidFiles(in)
	if len(pids) != len(files) || len(pids) == 0 {
		return 0, false
	}
	return pids[0], true
}

// livePids are the pids of the instance's daemons that are alive, in the
// engine's stop order.
func livePids(in *instance) []int {
	var out []int
	for _, f := range in.engine().pidFiles(in) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && isInstance(pid, in) {
			out = append(out, pid)
		}
	}
	return out
}

// isInstance checks that the process is alive and is a daemon of this
// instance (its command line names a file of the run directory), so a
// recycled pid is never taken for it.
func isInstance(pid int, in *instance) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(in.Dir+"/")) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited: "pid (comm) Z ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// stopProcesses shuts the instance down cleanly (the daemons withdraw
// the routes they installed), then by SIGTERM, then SIGKILL; after a kill
// it removes the routes the daemons left (their route protocol, in the
// instance's tables and namespace).
func (m *Manager) stopProcesses(ctx context.Context, in *instance) error {
	pids := livePids(in)
	if len(pids) == 0 {
		return nil
	}
	e := in.engine()
	if err := e.shutdown(ctx, m, in); err == nil && waitGone(ctx, pids, in, stopTimeout) {
		return nil
	}
	signal(pids, syscall.SIGTERM)
	if waitGone(ctx, pids, in, stopTimeout) {
		return nil
	}
	signal(pids, syscall.SIGKILL)
	if !waitGone(ctx, pids, in, stopTimeout) {
		return fmt.Errorf("the BGP daemons (pids %v) in %s do not stop", pids, nsWord(in.Netns))
	}
	return flushRoutes(ctx, in, e.routeProto())
}

func signal(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
}

// waitGone waits until none of pids is a live daemon of the instance.
func waitGone(ctx context.Context, pids []int, in *instance, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		alive := false
		for _, pid := range pids {
			alive = alive || isInstance(pid, in)
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flushRoutes removes the routes of the given protocol from the
// instance's tables, both families (ip route flush ... proto P).
func flushRoutes(ctx context.Context, in *instance, proto string) error {
	ip, err := program("ip")
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range in.Tables {
		for _, f := range []string{"-4", "-6"} {
			args := []string{f}
			if in.Netns != "" {
				args = append(args, "-n", in.Netns)
			}
			args = append(args, "route", "flush", "table", strconv.FormatUint(uint64(t), 10), "proto", proto)
			if out, err := exec.CommandContext(ctx, ip, args...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

// chownTree gives a run directory and its files to the engine's user.
func chownTree(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("the engine's user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func nsWord(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}
