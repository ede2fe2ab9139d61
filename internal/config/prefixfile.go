package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"unsafe"
)

// readPrefixFile reads a route list: one prefix (or address) per line;
// blank lines and everything after '#' are ignored. A relative path is
// relative to the config file's directory. Errors name the list's file and
// line.
func readPrefixFile(configFile, name string) (string, []netip.Prefix, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(configFile), name)
	}
	// Read whole and cut in place: a million-line list is ~20 MB, and
	// the prefixes go into one slice sized by the line count, with no
	// string per line (netip keeps none of the text).
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", nil, fmt.Errorf("cannot read the route list %s: %v", path, pe.Err)
		}
		return "", nil, err
	}
	out := make([]netip.Prefix, 0, bytes.Count(data, []byte{'\n'})+1)
	line := 0
	for len(data) > 0 {
		line++
		var text []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			text, data = data, nil
		}
		if i := bytes.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		var p netip.Prefix
		if bytes.IndexByte(text, '%') < 0 {
			// No zone: nothing of the text outlives the call.
			p, err = ParsePrefix(unsafe.String(&text[0], len(text)))
		} else {
			p, err = ParsePrefix(string(text))
		}
		if err != nil {
			return "", nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return "", nil, fmt.Errorf("the route list %s holds no prefix", path)
	}
	return path, out, nil
}
