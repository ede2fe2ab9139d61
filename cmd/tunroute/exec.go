package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"

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
that keep sockets there (wireguard-go: /run/wireguard, charon: /run/strongswan).`,
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
			return kernel.ExecIn(o)
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
