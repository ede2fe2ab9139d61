package testns

import (
	"fmt"
	"os/exec"
	"strings"
)

// HostState reads, with iproute2 and nft, what tests must never change in
// the host's own namespace: its rules, the routes tunroute would own, its
// nftables tables, and links tunroute marked (alias tunroute:...) or named
// with one of the given prefixes. A test package compares it before and
// after its run (a hook run outside the lab would change it).
func HostState(linkPrefixes ...string) string {
	var b strings.Builder
	for _, args := range [][]string{{"rule"}, {"-6", "rule"},
		{"route", "show", "table", "all", "proto", "116"}, {"-6", "route", "show", "table", "all", "proto", "116"}} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		fmt.Fprintf(&b, "ip %s: %s %v\n", strings.Join(args, " "), out, err)
	}
	out, err := exec.Command("ip", "-o", "link").CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		mark := strings.Contains(l, "alias tunroute")
		for _, p := range linkPrefixes {
			mark = mark || strings.HasPrefix(f[1], p)
		}
		if mark {
			fmt.Fprintf(&b, "link %s\n", l)
		}
	}
	fmt.Fprintf(&b, "ip -o link: %v\n", err)
	if out, err := exec.Command("nft", "list", "tables").CombinedOutput(); err == nil {
		fmt.Fprintf(&b, "nft list tables: %s\n", out)
	}
	return b.String()
}
