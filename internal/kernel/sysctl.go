package kernel

import (
	"strings"

	"golang.org/x/sys/unix"
)

// The sysctls routing decisions depend on (fib-semantics.md §1.1).
var (
	ipv4ConfKeys = []string{"forwarding", "rp_filter", "accept_local", "route_localnet",
		"send_redirects", "shared_media", "src_valid_mark", "ignore_routes_with_linkdown"}
	ipv6ConfKeys = []string{"forwarding", "ignore_routes_with_linkdown", "use_oif_addrs_only",
		"use_tempaddr", "disable_ipv6"}
	globalKeys = []string{"net.ipv4.ip_forward",
		"net.ipv4.fib_multipath_hash_policy", "net.ipv4.fib_multipath_hash_fields",
		"net.ipv4.fib_multipath_hash_seed", "net.ipv4.fib_multipath_use_neigh",
		"net.ipv6.fib_multipath_hash_policy", "net.ipv6.fib_multipath_hash_fields",
		"net.ipv6.fib_multipath_hash_seed"}
)

// sysctlNames lists the dotted names to read for a namespace with the
// given devices. A device name's dots become slashes, as sysctl(8) writes
// them.
func sysctlNames(devs []string) []string {
	names := append([]string(nil), globalKeys...)
	confs := append([]string{"all", "default"}, devs...)
	for _, fam := range []struct {
		prefix string
		keys   []string
	}{{"net.ipv4.conf.", ipv4ConfKeys}, {"net.ipv6.conf.", ipv6ConfKeys}} {
		for _, dev := range confs {
			for _, k := range fam.keys {
				names = append(names, fam.prefix+strings.ReplaceAll(dev, ".", "/")+"."+k)
			}
		}
	}
	return names
}

// sysctlPath turns a dotted name into its /proc/sys path.
func sysctlPath(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "/", ".")
	}
	return "/proc/sys/" + strings.Join(parts, "/")
}

// readSysctls reads the named sysctls of the calling thread's network
// namespace (files under /proc/sys/net belong to the namespace of the
// thread that opens them). Missing ones (no IPv6 on a device, an older
// kernel) are left out.
//
// The files are read with plain system calls into one buffer: a namespace
// has a hundred of them, and os.ReadFile's poller registration and
// allocations were most of the cost of a daemon's repair.
func readSysctls(names []string) map[string]string {
	out := make(map[string]string, len(names))
	var buf [256]byte
	for _, n := range names {
		fd, err := unix.Open(sysctlPath(n), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		m, err := unix.Read(fd, buf[:])
		unix.Close(fd)
		if err != nil || m < 0 {
			continue
		}
		out[n] = strings.Join(strings.Fields(string(buf[:m])), " ")
	}
	return out
}
