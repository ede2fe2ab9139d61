package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tunroute/tunroute/internal/prefixkey"
	"net/netip"
	"os"
	"path/filepath"
	"unsafe"
)

// readPrefixFile reads a route list: one prefix (or address) per line;
// blank lines and everything after '#' are ignored. A relative path is
// relative to the config file's directory. Errors name the list's file and
// line.
func readPrefixFile(configFile, name string, lists *ListCache) (string, []netip.Prefix, error) {
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
	var ps []netip.Prefix
	if lists != nil {
		ps, err = lists.parse(path, data)
	} else {
		ps, _, err = parsePrefixList(path, data)
	}
	if err != nil {
		return "", nil, err
	}
	return path, ps, nil
}

// parsePrefixList parses a route list's text. While every line is a
// plain IPv4 prefix (the usual list) they are kept as packed keys,
// radix-sorted into address order (a list is a set: its order means
// nothing, and the compiler's duplicate check and the planner's index
// want it sorted) and unpacked once. The first line that is not IPv4
// turns the keys into prefixes, and a mixed list keeps its file order
// (sorted false).
func parsePrefixList(path string, data []byte) (ps []netip.Prefix, sorted bool, err error) {
	var (
		keys = make([]uint64, 0, bytes.Count(data, []byte{'\n'})+1)
		out  []netip.Prefix // nil while every prefix is IPv4
		line int
	)
	for len(data) > 0 {
		line++
		if k, n, ok := plainLine4(data); ok {
			data = data[n:]
			if out == nil {
				keys = append(keys, k)
			} else {
				out = append(out, prefixkey.Unpack4(k))
			}
			continue
		}
		var text []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			text, data = data, nil
		}
		p, ok, err := parseListLine(path, line, text)
		switch {
		case err != nil:
			return nil, false, err
		case !ok:
			continue
		}
		if out == nil {
			if k, ok := prefixkey.Pack4(0, p); ok {
				keys = append(keys, k)
				continue
			}
			out = make([]netip.Prefix, len(keys), cap(keys))
			for i, k := range keys {
				out[i] = prefixkey.Unpack4(k)
			}
			keys = nil
		}
		out = append(out, p)
	}
	sorted = out == nil
	if sorted {
		out = unpackSorted(keys, len(keys))
	}
	if len(out) == 0 {
		return nil, false, fmt.Errorf("the route list %s holds no prefix", path)
	}
	return out, sorted, nil
}

// unpackSorted sorts IPv4 keys and unpacks them into a list of n
// prefixes or more (room to grow).
func unpackSorted(keys []uint64, n int) []netip.Prefix {
	prefixkey.SortKeys(keys)
	out := make([]netip.Prefix, len(keys), max(n, len(keys)))
	for i, k := range keys {
		out[i] = prefixkey.Unpack4(k)
	}
	return out
}

// parseListLine parses one line of a route list (without its newline),
// line of path: ok false for a blank or comment line.
func parseListLine(path string, line int, text []byte) (p netip.Prefix, ok bool, err error) {
	if i := bytes.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return p, false, nil
	}
	if bytes.IndexByte(text, '%') < 0 {
		// No zone: nothing of the text outlives the call.
		p, err = ParsePrefix(unsafe.String(&text[0], len(text)))
	} else {
		p, err = ParsePrefix(string(text))
	}
	if err != nil {
		return p, false, fmt.Errorf("%s:%d: %v", path, line, err)
	}
	return p, true, nil
}

// plainLine4 parses the usual line of a route list at the start of b, an
// IPv4 prefix "a.b.c.d/n" (or an address) in canonical form with no host
// bits set, ended by a newline or the end of b, several times faster than
// netip for a million lines. It returns the prefix as a prefixkey.Pack4
// key (table 0) and the bytes it took, the newline included. Anything else
// (ok false) goes to ParsePrefix, which accepts or refuses it.
func plainLine4(b []byte) (k uint64, n int, ok bool) {
	var a uint64
	i := 0
	for o := range 4 {
		if o > 0 {
			if i >= len(b) || b[i] != '.' {
				return 0, 0, false
			}
			i++
		}
		v, d := decimal(b[i:], 3)
		if d == 0 || v > 255 {
			return 0, 0, false
		}
		a, i = a<<8|uint64(v), i+d
	}
	bits := 32
	if i < len(b) && b[i] == '/' {
		v, d := decimal(b[i+1:], 2)
		if d == 0 || v > 32 {
			return 0, 0, false
		}
		bits, i = v, i+1+d
	}
	switch {
	case i == len(b):
	case b[i] == '\n':
		i++
	default:
		return 0, 0, false
	}
	if bits < 32 && a&(1<<(32-bits)-1) != 0 {
		return 0, 0, false // host bits set: ParsePrefix says so
	}
	return a<<8 | uint64(bits), i, true
}

// decimal reads up to max (2 or 3) digits of a decimal number with no
// leading zero (but "0"), returning the value and the digits read (0:
// none, or too many). Unrolled: it runs five times a line.
func decimal(b []byte, max int) (v, n int) {
	if len(b) == 0 || b[0]-'0' > 9 {
		return 0, 0
	}
	v = int(b[0] - '0')
	if len(b) == 1 || b[1]-'0' > 9 {
		return v, 1
	}
	if v == 0 {
		return 0, 0
	}
	v = v*10 + int(b[1]-'0')
	if len(b) == 2 || b[2]-'0' > 9 {
		return v, 2
	}
	if max == 2 || len(b) > 3 && b[3]-'0' <= 9 {
		return 0, 0
	}
	return v*10 + int(b[2]-'0'), 3
}
