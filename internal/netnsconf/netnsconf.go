// Package netnsconf renders the per-namespace files iproute2's convention
// keeps under /etc/netns/NAME/ (resolv.conf), which `ip netns exec` and
// `tunroute exec` bind over /etc inside the namespace. tunroute only ever
// changes the files it wrote, known by their first line; the engine
// writes them as plan steps.
package netnsconf

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// DefaultDir is iproute2's directory of per-namespace /etc files.
const DefaultDir = "/etc/netns"

const header = "# written by tunroute for domain "

// ResolvConfPath is the domain's resolv.conf under root (DefaultDir).
func ResolvConfPath(root, ns string) string { return filepath.Join(root, ns, "resolv.conf") }

// ResolvConf renders a domain's resolv.conf with these nameservers.
func ResolvConf(ns string, servers []netip.Addr) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s; tunroute down removes it\n", header, ns)
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return []byte(b.String())
}

// Ours reports whether tunroute wrote a file with this content.
func Ours(data []byte) bool { return bytes.HasPrefix(data, []byte(header)) }
