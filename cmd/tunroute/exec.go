package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/netnsconf"
)

func newExecCmd(g *globalFlags) *cobra.Command {
	var userName string
	var private []string
	cmd := &cobra.Command{
		Use:   "exec DOMAIN [--user USER] [--private-dir DIR]... -- COMMAND [ARG...]",
		Short: "Run a command confined to a routing domain",
		Long: `tunroute exec runs COMMAND inside the network namespace of DOMAIN, a domain
tunroute made, with the domain's /etc/netns/DOMAIN files (resolv.conf) bound
over /etc in a mount namespace of its own, like ip netns exec. The command
replaces tunroute (same process), so signals and the exit status pass
through. --private-dir gives the command an empty tmpfs at DIR, for daemons
that keep sockets there (wireguard-go: /run/wireguard, charon: /run/strongswan).
A DIR that does not exist is made for the command and removed after it: then
tunroute runs the command as its child instead (passing on its signals and
its exit status), and leaves DIR, with a message, while a process the command
started still runs in its mount namespace.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, argv := args[0], args[1:]
			if cmd.ArgsLenAtDash() != 1 {
				return fmt.Errorf("exec: write the command after --: tunroute exec %s -- COMMAND", domain)
			}
			owner, err := kernel.NamespaceOwner(domain)
			if err != nil {
				return err
			}
			if owner == "" {
				return fmt.Errorf("exec: %s is not a domain tunroute made (no such network namespace, or not tunroute's)", domain)
			}
			path, err := exec.LookPath(argv[0])
			if err != nil {
				return fmt.Errorf("exec: %w", err)
			}
			o := kernel.ExecOptions{Netns: domain, EtcDir: filepath.Join(netnsconf.DefaultDir, domain),
				PrivateDirs: private, Path: path, Argv: argv, Env: os.Environ()}
			if userName != "" {
				if err := lookupUser(userName, &o); err != nil {
					return err
				}
			}
			created, err := makeDirs(private)
			if err != nil {
				removeDirs(created)
				return err
			}
			if len(created) == 0 {
				return kernel.ExecIn(o)
			}
			return runAndRemove(o, created)
		},
	}
	cmd.Flags().StringVar(&userName, "user", "", "run as this user (name or uid), with its groups")
	cmd.Flags().StringArrayVar(&private, "private-dir", nil, "mount an empty tmpfs here for the command (repeatable)")
	return cmd
}

func lookupUser(name string, o *kernel.ExecOptions) error {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return fmt.Errorf("--user %s: %w", name, err)
	}
	o.SetUser = true
	o.UID, _ = strconv.Atoi(u.Uid)
	o.GID, _ = strconv.Atoi(u.Gid)
	gids, err := u.GroupIds()
	if err != nil {
		return fmt.Errorf("--user %s: its groups: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			o.Groups = append(o.Groups, n)
		}
	}
	env := []string{}
	for _, kv := range o.Env {
		if len(kv) > 5 && (kv[:5] == "HOME=" || kv[:5] == "USER=") {
			continue
		}
		env = append(env, kv)
	}
	o.Env = append(env, "HOME="+u.HomeDir, "USER="+u.Username)
	return nil
}

// makeDirs makes the private directories that do not exist, with their
// missing parents, and returns what it made, deepest first (the order
// to remove them in).
func makeDirs(dirs []string) ([]string, error) {
	var made []string
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return made, fmt.Errorf("--private-dir %s: give an absolute path", d)
		}
		var missing []string
		for p := filepath.Clean(d); ; p = filepath.Dir(p) {
			if _, err := os.Lstat(p); err == nil {
				break
			}
			missing = append(missing, p)
			if p == filepath.Dir(p) {
				break
			}
		}
		for i := len(missing) - 1; i >= 0; i-- {
			if err := os.Mkdir(missing[i], 0o755); err != nil {
				return made, fmt.Errorf("--private-dir %s: %w", d, err)
			}
			made = append([]string{missing[i]}, made...)
		}
	}
	return made, nil
}

// removeDirs removes directories that are empty, in order.
func removeDirs(dirs []string) error {
	var first error
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && first == nil {
			first = fmt.Errorf("removing %s: %w", d, err)
		}
	}
	return first
}

// runAndRemove runs the command as tunroute's child, removes the
// directories made for it once nothing uses them, and exits as the
// command did (128+N when killed by signal N, as shells report it).
func runAndRemove(o kernel.ExecOptions, made []string) error {
	res, err := kernel.RunIn(o, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		removeDirs(made)
		return err
	}
	if res.StillUsedBy != 0 {
		fmt.Fprintf(os.Stderr, "tunroute: left %s: process %d, started by the command, still uses it\n", strings.Join(made, ", "), res.StillUsedBy)
	} else if err := removeDirs(made); err != nil {
		fmt.Fprintf(os.Stderr, "tunroute: %v\n", err)
	}
	code := res.Status.ExitStatus()
	if res.Status.Signaled() {
		code = 128 + int(res.Status.Signal())
	}
	return &exitError{code: code}
}
