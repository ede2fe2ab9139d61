package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
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
	if err := checkNamespaceName(o.Netns); err != nil {
		return err
	}
	ns, err := netns.GetFromName(o.Netns)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("network namespace %q does not exist", o.Netns)
	}
	if err != nil {
		return err
	}
	defer ns.Close()
	// From here on this thread's namespaces change: it execs or the
	// process exits, so it is never unlocked.
	runtime.LockOSThread()
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
