package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ExecOptions say how to run a command inside a namespace.
type ExecOptions struct {
	// Netns is the named network namespace to run in.
	Netns string
	// EtcDir holds per-namespace files bound over /etc (iproute2's
	// /etc/netns/NAME convention: resolv.conf, hosts...).
	EtcDir string
	// PrivateDirs get an empty tmpfs in the command's own mount namespace,
	// so daemons that keep sockets there (wireguard-go's /run/wireguard,
	// charon's /run/strongswan...) do not collide with other domains'.
	PrivateDirs []string
	// UID/GID/Groups, when SetUser, are the identity to run as.
	SetUser bool
	UID     int
	GID     int
	Groups  []int
	// Path is the program, Argv its arguments (Argv[0] included).
	Path string
	Argv []string
	Env  []string
}

// ExecIn replaces the calling process with the command, running in the
// named network namespace with its own mount namespace, like `ip netns
// exec`: the process keeps its pid, so signals and the exit status pass
// through untouched. It returns only on failure.
func ExecIn(o ExecOptions) error {
	ns, err := openExecNamespace(o.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	// From here on this thread's namespaces change: it execs or the
	// process exits, so it is never unlocked.
	runtime.LockOSThread()
	if err := enter(o, ns); err != nil {
		return err
	}
	if o.SetUser {
		// On this thread only (raw system calls): it is the one that
		// execs, and the new program inherits its credentials.
		if err := setIDs(o.UID, o.GID, o.Groups); err != nil {
			return err
		}
	}
	err = syscall.Exec(o.Path, o.Argv, o.Env)
	return fmt.Errorf("exec %s: %w", o.Path, err)
}

// RunResult is how a command RunIn ran ended.
type RunResult struct {
	Status syscall.WaitStatus
	// StillUsedBy is a process still in the command's mount namespace
	// after the command exited (a daemon it started), 0 if none: the
	// private directories are still its mount points.
	StillUsedBy int
}

// RunIn runs the command as a child of tunroute, in the same namespaces
// ExecIn would give it, waits for it and returns how it ended. Only one
// thread of tunroute enters the namespaces (the one that forks the
// child, and that ends with it): the caller stays where it is, so that
// it can remove what it made for the command. The signals tunroute gets
// are passed to the command, but the terminal's SIGINT and SIGQUIT,
// which reach both (they are in one process group).
func RunIn(o ExecOptions, stdin, stdout, stderr *os.File) (RunResult, error) {
	ns, err := openExecNamespace(o.Netns)
	if err != nil {
		return RunResult{}, err
	}
	defer ns.Close()
	type started struct {
		cmd   *exec.Cmd
		mntNS unix.Stat_t
		err   error
	}
	// Caught from before the command starts to after it ends: until
	// then they would end tunroute and leave the command alone.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	ch := make(chan started, 1)
	exited := make(chan struct{})
	go func() {
		// This thread's namespaces change and are never restored: the
		// goroutine ends locked, which ends the thread.
		runtime.LockOSThread()
		var st started
		if st.err = enter(o, ns); st.err != nil {
			ch <- st
			return
		}
		if st.err = unix.Stat("/proc/thread-self/ns/mnt", &st.mntNS); st.err != nil {
			ch <- st
			return
		}
		st.cmd = &exec.Cmd{Path: o.Path, Args: o.Argv, Env: o.Env, Stdin: stdin, Stdout: stdout, Stderr: stderr,
			SysProcAttr: &syscall.SysProcAttr{}}
		if o.SetUser {
			gs := make([]uint32, len(o.Groups))
			for i, g := range o.Groups {
				gs[i] = uint32(g)
			}
			st.cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(o.UID), Gid: uint32(o.GID), Groups: gs}
		}
		// Forked from this thread: the child starts in its namespaces.
		st.err = st.cmd.Start()
		ch <- st
		if st.err == nil {
			st.cmd.Wait()
		}
		close(exited)
	}()
	st := <-ch
	if st.err != nil {
		return RunResult{}, fmt.Errorf("running %s in %s: %w", o.Path, o.Netns, st.err)
	}
	for done := false; !done; {
		select {
		case s := <-sigs:
			if s != syscall.SIGINT && s != syscall.SIGQUIT {
				st.cmd.Process.Signal(s)
			}
		case <-exited:
			done = true
		}
	}
	res := RunResult{Status: st.cmd.ProcessState.Sys().(syscall.WaitStatus)}
	res.StillUsedBy = processInMountNS(st.mntNS)
	return res, nil
}

// processInMountNS returns a process (not this one) whose mount namespace
// is ns, or 0.
func processInMountNS(ns unix.Stat_t) int {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+p.Name()+"/ns/mnt", &st) == nil && st.Dev == ns.Dev && st.Ino == ns.Ino {
			return pid
		}
	}
	return 0
}

func openExecNamespace(name string) (netns.NsHandle, error) {
	if err := checkNamespaceName(name); err != nil {
		return netns.None(), err
	}
	ns, err := netns.GetFromName(name)
	if errors.Is(err, fs.ErrNotExist) {
		return netns.None(), fmt.Errorf("network namespace %q does not exist", name)
	}
	return ns, err
}

// enter moves the calling thread, locked to its goroutine, into a mount
// namespace of its own and the network namespace ns, with the domain's
// /etc files and the private directories mounted there.
func enter(o ExecOptions, ns netns.NsHandle) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("new mount namespace: %w", err)
	}
	// Keep our mounts from propagating back to the host.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("entering network namespace %q: %w", o.Netns, err)
	}
	// /sys shows the network devices of the namespace that mounted it.
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err == nil {
		unix.Mount(o.Netns, "/sys", "sysfs", 0, "")
	}
	if o.EtcDir != "" {
		if err := bindEtc(o.EtcDir); err != nil {
			return err
		}
	}
	for _, d := range o.PrivateDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("private directory %s: %w", d, err)
		}
		if err := unix.Mount("tunroute", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("private directory %s: %w", d, err)
		}
	}
	return nil
}

// bindEtc binds each file of dir over the same name in /etc.
func bindEtc(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		src := filepath.Join(dir, e.Name())
		dst := filepath.Join("/etc", e.Name())
		if _, err := os.Stat(dst); err != nil {
			continue // iproute2 too binds only over files that exist
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s over %s: %w", src, dst, err)
		}
	}
	return nil
}

func setIDs(uid, gid int, groups []int) error {
	gs := make([]uint32, len(groups))
	for i, g := range groups {
		gs[i] = uint32(g)
	}
	var p unsafe.Pointer
	if len(gs) > 0 {
		p = unsafe.Pointer(&gs[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gs)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setgid %d: %w", gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setuid %d: %w", uid, e)
	}
	return nil
}
