// Package netnsconf writes the per-namespace files iproute2's convention
// keeps under /etc/netns/NAME/ (resolv.conf), which `ip netns exec` and
// `tunroute exec` bind over /etc inside the namespace. tunroute only ever
// changes the files it wrote, known by their first line.
package netnsconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is iproute2's directory of per-namespace /etc files.
const DefaultDir = "/etc/netns"

const header = "# written by tunroute for domain "

// Dir is a /etc/netns directory (another root in tests).
type Dir struct{ Root string }

func (d Dir) path(ns string) string { return filepath.Join(d.Root, ns, "resolv.conf") }

// WriteResolvConf writes the domain's resolv.conf with these nameservers.
// A resolv.conf there that tunroute did not write is left alone and
// reported.
func (d Dir) WriteResolvConf(ns string, servers []netip.Addr) error {
	p := d.path(ns)
	if old, err := os.ReadFile(p); err == nil && !bytes.HasPrefix(old, []byte(header)) {
		return fmt.Errorf("%s exists and was not written by tunroute; not replacing it", p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s; tunroute down removes it\n", header, ns)
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tunroute-new"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Remove deletes the domain's resolv.conf if tunroute wrote it, and the
// directory if that leaves it empty.
func (d Dir) Remove(ns string) error {
	p := d.path(ns)
	old, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(old, []byte(header)) {
		return nil
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	os.Remove(filepath.Dir(p)) // only succeeds when empty
	return nil
}
