package kernel

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CurrentNamespace returns the name under /run/netns of the network
// namespace this process runs in ("" if it has none, like the host's):
// a hook run by `ip netns exec NAME openvpn ...` works in NAME.
func CurrentNamespace() (string, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return "", err
	}
	names, err := ListNamespaces()
	if err != nil {
		return "", err
	}
	for _, n := range names {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(NetnsDir, n), &st) == nil && st.Dev == self.Dev && st.Ino == self.Ino {
			return n, nil
		}
	}
	return "", nil
}
