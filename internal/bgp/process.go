package bgp

// The part of this package that acts on the system: it runs BIRD's
// programs, starts the daemon inside a namespace and stops it. After a
// forced stop it removes the routes the daemon left in the kernel.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// How long BIRD gets to come up, and to shut down cleanly (withdrawing
// its routes from the kernel) before it is killed.
// A control command gets birdcTimeout: a hung daemon must not hang
// tunroute.
const (
	startTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	birdcTimeout = 3 * time.Second
)

func (m *Manager) program(name, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install BIRD 2 (Debian: apt-get install bird2)", name)
}

// parseOnly has BIRD parse a configuration file (bird -p).
func (m *Manager) parseOnly(ctx context.Context, conf string) error {
	bird, err := m.program("bird", m.Bird)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, bird, "-p", "-c", conf).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bird -p: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// birdc sends one command to the instance's control socket.
func (m *Manager) birdc(ctx context.Context, in *instance, args ...string) ([]byte, error) {
	birdc, err := m.program("birdc", m.Birdc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, birdcTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, birdc, append([]string{"-s", in.socket()}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return out, nil
}

// startProcess starts BIRD in the instance's namespace, through
// `ip netns exec` (a mount namespace of its own with the domain's
// /etc/netns files, like `tunroute exec`), with its control socket, pid
// file and log in the run directory. BIRD forks into the background once
// its configuration is read; startProcess returns when it answers on its
// socket.
func (m *Manager) startProcess(ctx context.Context, in *instance) error {
	bird, err := m.program("bird", m.Bird)
	if err != nil {
		return err
	}
	argv := []string{bird, "-c", in.conf(), "-s", in.socket(), "-P", in.pidFile()}
	if in.Netns != "" {
		ip, err := m.program("ip", "")
		if err != nil {
			return err
		}
		argv = append([]string{ip, "netns", "exec", in.Netns}, argv...)
	}
	out, err := os.OpenFile(filepath.Join(in.Dir, "bird.out"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("starting bird: %v: %s", err, bytes.TrimSpace(b))
	}
	deadline := time.Now().Add(startTimeout)
	for {
		if _, ok := m.running(in); ok {
			if _, err := m.birdc(ctx, in, "show", "status"); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(out.Name())
			return fmt.Errorf("bird did not come up in %s: %s", startTimeout, bytes.TrimSpace(b))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// running reads the instance's pid file and checks that the process is
// alive and is the BIRD of this instance (its command line names this
// configuration), so a recycled pid is never taken for it.
func (m *Manager) running(in *instance) (int, bool) {
	b, err := os.ReadFile(in.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isInstance(pid, in)
}

func isInstance(pid int, in *instance) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(in.conf()+"\x00")) {
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

// stopProcess shuts the instance down cleanly (birdc down: BIRD removes
// the routes it installed), then by SIGTERM, then SIGKILL; after a kill
// it removes the routes BIRD left (protocol bird, in the instance's
// tables and namespace).
func (m *Manager) stopProcess(ctx context.Context, in *instance) error {
	pid, ok := m.running(in)
	if !ok {
		return nil
	}
	if _, err := m.birdc(ctx, in, "down"); err == nil && waitGone(ctx, pid, in, stopTimeout) {
		return nil
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(ctx, pid, in, stopTimeout) {
		return nil
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if !waitGone(ctx, pid, in, stopTimeout) {
		return fmt.Errorf("bird (pid %d) in %s does not stop", pid, nsWord(in.Netns))
	}
	return m.flushRoutes(ctx, in)
}

func waitGone(ctx context.Context, pid int, in *instance, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for isInstance(pid, in) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// flushRoutes removes the routes of protocol bird from the instance's
// tables, both families (ip route flush ... proto bird).
func (m *Manager) flushRoutes(ctx context.Context, in *instance) error {
	ip, err := m.program("ip", "")
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
			args = append(args, "route", "flush", "table", strconv.FormatUint(uint64(t), 10), "proto", "bird")
			if out, err := exec.CommandContext(ctx, ip, args...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

func nsWord(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}
