package compile

import (
	"maps"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/config"
)

// multipathHashKeys are the sysctls that choose what the kernel hashes to
// pick a path of a multipath route, per family.
var multipathHashKeys = []string{"net.ipv4.fib_multipath_hash_policy", "net.ipv6.fib_multipath_hash_policy"}

// multipathHashValue is the kernel's value for a setting: 0 hashes the
// addresses (L3), 1 the addresses and ports (L4).
func multipathHashValue(setting string) string {
	if setting == config.MultipathL3 {
		return "0"
	}
	return "1"
}

func multipathHashWord(v string) string {
	switch v {
	case "0":
		return "L3, addresses only"
	case "1":
		return "L4, addresses and ports"
	case "2":
		return "L3, or the inner packet's addresses"
	case "3":
		return "custom fields"
	}
	return "unknown"
}

// multipathHash says which hash policy the namespace's balance groups
// want (Result.Sysctls): L4 unless settings.multipath_hash says l3, so
// that the flows between two hosts spread too. Nothing without a balance
// group.
func (c *compiler) multipathHash() {
	has := false
	for _, g := range c.cfg.Groups {
		has = has || g.Balance != nil
	}
	if !has {
		return
	}
	v := multipathHashValue(c.cfg.MultipathHash)
	if c.res.Sysctls == nil {
		c.res.Sysctls = map[string]string{}
	}
	for _, k := range multipathHashKeys {
		c.res.Sysctls[k] = v
	}
}

// reportSysctls is for the namespace tunroute runs in, whose sysctls it
// never changes: a note for each one the config wants that differs, with
// the command that sets it.
func (c *compiler) reportSysctls() {
	for _, k := range slices.Sorted(maps.Keys(c.res.Sysctls)) {
		want := c.res.Sysctls[k]
		have, known := c.f.s.Sysctls[k]
		if !known || strings.TrimSpace(have) == want {
			continue
		}
		c.note("balance groups: %s is %s here (%s); the config wants %s (%s). tunroute does not change this namespace's sysctls: set it with `sysctl -w %s=%s` (and in /etc/sysctl.d to keep it)",
			k, have, multipathHashWord(have), want, multipathHashWord(want), k, want)
	}
}
