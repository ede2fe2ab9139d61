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
		if q, ok := plainPrefix4(text); ok {
			p = q
		} else if bytes.IndexByte(text, '%') < 0 {
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
	sortPrefixes4(out)
	return path, out, nil
}

// plainPrefix4 parses the usual line of a route list, an IPv4 prefix
// "a.b.c.d/n" (or an address) in canonical form with no host bits set,
// several times faster than netip for a million lines. Anything else
// (ok false) goes to ParsePrefix, which accepts or refuses it.
func plainPrefix4(b []byte) (p netip.Prefix, ok bool) {
	var a [4]byte
	i := 0
	for o := range 4 {
		if o > 0 {
			if i >= len(b) || b[i] != '.' {
				return p, false
			}
			i++
		}
		v, n := decimal(b[i:], 3)
		if n == 0 || v > 255 {
			return p, false
		}
		a[o], i = byte(v), i+n
	}
	bits := 32
	if i < len(b) {
		if b[i] != '/' {
			return p, false
		}
		v, n := decimal(b[i+1:], 2)
		if n == 0 || v > 32 || i+1+n != len(b) {
			return p, false
		}
		bits = v
	}
	p = netip.PrefixFrom(netip.AddrFrom4(a), bits)
	return p, p.Masked() == p
}

// decimal reads up to max digits of a decimal number with no leading
// zero (but "0"), returning the value and the digits read (0: none).
func decimal(b []byte, max int) (v, n int) {
	for n < len(b) && n < max && b[n] >= '0' && b[n] <= '9' {
		if n == 1 && b[0] == '0' {
			return 0, 0
		}
		v = v*10 + int(b[n]-'0')
		n++
	}
	if n < len(b) && b[n] >= '0' && b[n] <= '9' {
		return 0, 0 // too many digits
	}
	return v, n
}

// sortPrefixes4 puts an IPv4 list in address order (a list is a set:
// its order means nothing), the order the compiler's duplicate check and
// the planner's index want: sorted once here, they find it sorted
// (prefixkey.Sort costs them a pass) instead of each sorting a million
// keys. A list with IPv6 prefixes is left as it is.
func sortPrefixes4(ps []netip.Prefix) {
	keys := make([]prefixkey.Keyed, len(ps))
	for i, p := range ps {
		k, ok := prefixkey.Pack4(0, p)
		if !ok {
			return
		}
		keys[i] = prefixkey.Keyed{K: k, V: uint64(i)}
	}
	prefixkey.Sort(keys)
	for i, k := range keys {
		ps[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(k.K >> 32), byte(k.K >> 24), byte(k.K >> 16), byte(k.K >> 8)}), int(k.K&0xff))
	}
}
