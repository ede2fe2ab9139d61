package main

import (
	"fmt"
	"strings"
)

// takeCgroup removes "cgroup PATH" from explain's words: the kernel's
// `ip route get` has no such word, but tunroute's selectors mark a
// cgroup's packets in its firewall before routing them again.
func takeCgroup(args []string) ([]string, string, error) {
	var out []string
	cgroup := ""
	for i := 0; i < len(args); i++ {
		if args[i] != "cgroup" {
			out = append(out, args[i])
			continue
		}
		if i+1 >= len(args) {
			return nil, "", fmt.Errorf("explain: cgroup needs a value (a cgroup v2 path, e.g. system.slice/foo.service)")
		}
		i++
		cgroup = strings.Trim(args[i], "/")
	}
	return out, cgroup, nil
}
