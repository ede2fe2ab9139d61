package domaintest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// TestExec: `tunroute exec DOMAIN -- CMD` runs CMD in the domain in place
// of tunroute: the exit status and signals pass through, --user drops
// privileges, --private-dir gives an empty tmpfs that nobody else sees,
// and /etc/resolv.conf is the domain's.
func TestExec(t *testing.T) {
	e := newEnv(t, "ex")
	top, box := e.NS("top"), e.NS("box")
	e.addNS("top")
	e.apply(e.config("exec.yaml", nil), top)
	sh, err := lookProg("sh")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("exit status", func(t *testing.T) {
		e := e.in(t)
		for _, code := range []int{0, 3, 42} {
			if out, got := e.exec(box, nil, "", sh, "-c", fmt.Sprintf("exit %d", code)); got != code {
				t.Errorf("exit %d inside: tunroute exited %d\n%s", code, got, out)
			}
		}
	})

	t.Run("signals", func(t *testing.T) {
		e := e.in(t)
		cmd := e.startWaiting(box)
		// tunroute's pid is the command's, and it runs in the domain.
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if exe != e.helper {
			t.Errorf("pid %d runs %q, want the command %s (tunroute exec replaces itself)", cmd.Process.Pid, exe, e.helper)
		}
		if !sameNetns(t, fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), filepath.Join("/run/netns", box)) {
			t.Errorf("the command is not in %s's network namespace", box)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
				t.Errorf("SIGTERM to tunroute's pid: the command ended with %v, want killed by SIGTERM", cmd.ProcessState)
			}
		case <-time.After(3 * time.Second):
			t.Error("the command still runs 3 s after SIGTERM")
		}
	})

	t.Run("user", func(t *testing.T) {
		e := e.in(t)
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody")
		}
		idBin, err := lookProg("id")
		if err != nil {
			t.Skip(err)
		}
		for flag, want := range map[string]string{"-u": u.Uid, "-g": u.Gid} {
			out, code := e.exec(box, []string{"--user", "nobody"}, "", idBin, flag)
			if code != 0 || strings.TrimSpace(out) != want {
				t.Errorf("id %s as --user nobody: exit %d, %q; want %s", flag, code, out, want)
			}
		}
		// By number too.
		out, code := e.exec(box, []string{"--user", u.Uid}, "", idBin, "-u")
		if code != 0 || strings.TrimSpace(out) != u.Uid {
			t.Errorf("id -u as --user %s: exit %d, %q", u.Uid, code, out)
		}
		// Dropped for good: the command cannot do what root can.
		out, code = e.exec(box, []string{"--user", "nobody"}, "", sh, "-c", "echo x > /proc/sys/net/ipv4/ip_forward")
		if code == 0 {
			t.Errorf("as nobody, writing a sysctl of the domain worked:\n%s", out)
		}
	})

	t.Run("private dir", func(t *testing.T) {
		e := e.in(t)
		dir := filepath.Join(e.Dir, "priv")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "outside"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := e.exec(box, []string{"--private-dir", dir}, "", sh, "-c",
			fmt.Sprintf("ls -A %s; echo --; echo y > %s/inside && ls -A %s && grep -c ' %s ' /proc/self/mountinfo", dir, dir, dir, dir))
		if code != 0 || out != "--\ninside\n1\n" {
			t.Errorf("inside, with --private-dir %s: exit %d, output %q; want an empty tmpfs", dir, code, out)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "outside" {
			t.Errorf("outside, %s holds %v: the private dir leaked", dir, entries)
		}
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), " "+dir+" ") {
			t.Errorf("the tmpfs on %s is visible outside", dir)
		}
	})

	t.Run("private dir made for the command", func(t *testing.T) {
		e := e.in(t)
		parent := filepath.Join(e.Dir, "made")
		dir := filepath.Join(parent, "priv")
		out, code := e.exec(box, []string{"--private-dir", dir}, "", sh, "-c",
			fmt.Sprintf("echo y > %s/inside && ls -A %s && grep -c ' %s ' /proc/self/mountinfo; exit 7", dir, dir, dir))
		if code != 7 || out != "inside\n1\n" {
			t.Errorf("inside, with --private-dir %s (made for it): exit %d, output %q; want 7 and an empty tmpfs", dir, code, out)
		}
		for _, d := range []string{dir, parent} {
			if _, err := os.Lstat(d); err == nil {
				t.Errorf("%s, made for the command, is left after it", d)
			}
		}

		// --user holds in this way of running the command too.
		if u, err := user.Lookup("nobody"); err == nil {
			out, code := e.exec(box, []string{"--user", "nobody", "--private-dir", dir}, "", sh, "-c", "id -u; touch "+dir+"/x")
			if code == 0 || !strings.HasPrefix(out, u.Uid+"\n") {
				t.Errorf("as --user nobody with a private dir made for it: exit %d, %q; want uid %s, and no writing to the root-owned tmpfs", code, out, u.Uid)
			}
		}

		// Signals tunroute gets reach the command; the directory goes
		// when the command ends.
		cmd := e.startWaiting(box, "--private-dir", dir)
		if _, err := os.Lstat(dir); err != nil {
			t.Errorf("while the command runs: %v", err)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
			if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
				t.Errorf("SIGTERM to tunroute: exit %v, want %d (the command killed by SIGTERM)", cmd.ProcessState, 128+int(syscall.SIGTERM))
			}
		case <-time.After(3 * time.Second):
			t.Fatal("tunroute and the command still run 3 s after SIGTERM")
		}
		if _, err := os.Lstat(parent); err == nil {
			t.Errorf("%s is left after the command was killed", parent)
		}

		// A daemon the command started keeps the directory.
		out, code = e.exec(box, []string{"--private-dir", dir}, "", sh, "-c", "sleep 30 >/dev/null 2>&1 & echo started")
		if code != 0 || !strings.HasPrefix(out, "started\n") || !strings.Contains(out, "still uses it") {
			t.Errorf("a command that leaves a daemon: exit %d\n%s\nwant a message that the directory is left", code, out)
		}
		if _, err := os.Lstat(dir); err != nil {
			t.Errorf("the directory a daemon still uses was removed: %v", err)
		}
		for _, pid := range testns.KillIn(box) {
			t.Logf("killed the daemon, pid %d", pid)
		}
		os.RemoveAll(parent)
	})

	t.Run("resolv.conf", func(t *testing.T) {
		e := e.in(t)
		before, _ := os.ReadFile("/etc/resolv.conf")
		out, code := e.exec(box, nil, "", "/bin/cat", "/etc/resolv.conf")
		if code != 0 || !strings.Contains(out, "nameserver 198.51.100.53\nnameserver 2001:db8:53::53\n") {
			t.Errorf("/etc/resolv.conf inside %s: exit %d\n%s", box, code, out)
		}
		if after, _ := os.ReadFile("/etc/resolv.conf"); string(after) != string(before) {
			t.Error("the host's /etc/resolv.conf changed")
		}
	})

	t.Run("not a domain", func(t *testing.T) {
		e := e.in(t)
		for _, ns := range []string{top, e.NS("nonexistent")} {
			out, code := e.exec(ns, nil, "", "/bin/true")
			if code == 0 || !strings.Contains(out, "not a domain") {
				t.Errorf("tunroute exec %s (not a domain): exit %d\n%s", ns, code, out)
			}
		}
	})
}

func sameNetns(t *testing.T, a, b string) bool {
	t.Helper()
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// startWaiting runs `tunroute exec DOMAIN [FLAGS...] -- helper` with the
// helper waiting to be killed, and returns once the helper runs (it
// said "ready"); the process is killed when the test ends.
func (e *env) startWaiting(domain string, flags ...string) *exec.Cmd {
	e.t.Helper()
	args := append(append([]string{"exec", domain}, flags...), "--", e.helper)
	cmd := exec.Command(e.Bin, args...)
	cmd.Env = append(os.Environ(), helperEnv+"=wait")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.procs = append(e.procs, cmd)
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if line != "ready\n" {
			e.t.Fatalf("the command said %q", line)
		}
	case <-time.After(5 * time.Second):
		e.t.Fatal("the command did not start within 5 s")
	}
	return cmd
}
