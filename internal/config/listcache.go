package config

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"sync"

	"github.com/tunroute/tunroute/internal/prefixkey"
)

// ListCache keeps the route lists one config read parsed, text and
// prefixes, for the next read of that config (tunroute run reads it again
// at every apply). A list whose text is unchanged costs a comparison; one
// changed by a few lines costs a walk of both texts and those lines,
// not a million parses and a sort. It is a memo of text to prefixes, so
// what it gives is what a whole read gives, whatever became of the
// config that read it.
type ListCache struct {
	mu    sync.Mutex
	gen   uint64
	lists map[string]*cachedList
}

// cachedList is a list's text and its prefixes: all IPv4, in address
// order (the only lists kept; others are read whole every time).
type cachedList struct {
	data []byte
	ps   []netip.Prefix
	gen  uint64 // of the last read that used it
}

// begin starts a read of the config: the lists it does not read are
// dropped at its end (sweep).
func (c *ListCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	return c.gen
}

// sweep drops the lists read gen did not use.
func (c *ListCache) sweep(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for path, l := range c.lists {
		if l.gen < gen {
			delete(c.lists, path)
		}
	}
}

// parse is parsePrefixList through the cache.
func (c *ListCache) parse(path string, data []byte) ([]netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.lists[path]; l != nil {
		l.gen = c.gen
		if bytes.Equal(l.data, data) {
			return l.ps, nil
		}
		ps, ok, err := l.edit(path, data)
		if err != nil {
			return nil, err
		}
		if ok {
			l.data, l.ps = data, ps
			return ps, nil
		}
	}
	ps, sorted, err := parsePrefixList(path, data)
	if err != nil {
		return nil, err
	}
	if sorted {
		if c.lists == nil {
			c.lists = map[string]*cachedList{}
		}
		c.lists[path] = &cachedList{data: data, ps: ps, gen: c.gen}
	}
	return ps, nil
}

// resyncWindow is how many lines ahead a walk looks for the line the
// other text has, to tell lines removed or inserted from lines replaced.
const resyncWindow = 16

// edit reads data as l's text with some lines removed, inserted or
// replaced: it walks both texts a line at a time, parses only the lines
// that differ, and merges them into l's prefixes. ok is false when more
// than an eighth of the lines differ, or a new line is not IPv4: data is
// then read whole. A new line that is not a prefix is the error a whole
// read gives (the first bad line: the kept ones are all good).
func (l *cachedList) edit(path string, data []byte) (ps []netip.Prefix, ok bool, err error) {
	old, cur := l.data, data
	limit := max(len(l.ps)/8, 64)
	var gone, came []uint64
	line := 0 // of data
	// take parses one line: of the old text (line 0) or of data.
	take := func(text []byte, n int, into *[]uint64) bool {
		p, isPrefix, err2 := parseListLine(path, n, text)
		if err2 != nil {
			err = err2
			return false
		}
		if !isPrefix {
			return true
		}
		k, v4 := prefixkey.Pack4(0, p)
		*into = append(*into, k)
		return v4 && len(*into) <= limit
	}
	for len(old) > 0 || len(cur) > 0 {
		// Skip what both texts share, to the start of the line where
		// they part: a few memory compares for a hundred lines.
		if n := commonPrefix(old, cur); n > 0 {
			start := bytes.LastIndexByte(old[:n], '\n') + 1
			line += bytes.Count(cur[:start], []byte{'\n'})
			old, cur = old[start:], cur[start:]
			if len(old) == 0 && len(cur) == 0 {
				break
			}
		}
		a, oldNext := cutLine(old)
		b, curNext := cutLine(cur)
		switch {
		case len(old) > 0 && len(cur) > 0 && bytes.Equal(a, b):
			old, cur = oldNext, curNext
			line++
			continue
		case len(cur) == 0:
			if !take(a, 0, &gone) {
				return nil, false, err
			}
			old = oldNext
			continue
		case len(old) == 0:
			line++
			if !take(b, line, &came) {
				return nil, false, err
			}
			cur = curNext
			continue
		}
		if k := findLine(oldNext, b); k >= 0 {
			// a and the k lines after it were removed.
			for range k + 1 {
				a, old = cutLine(old)
				if !take(a, 0, &gone) {
					return nil, false, err
				}
			}
			continue
		}
		if k := findLine(curNext, a); k >= 0 {
			// b and the k lines after it were inserted.
			for range k + 1 {
				b, cur = cutLine(cur)
				line++
				if !take(b, line, &came) {
					return nil, false, err
				}
			}
			continue
		}
		line++
		if !take(a, 0, &gone) || !take(b, line, &came) {
			return nil, false, err
		}
		old, cur = oldNext, curNext
	}
	ps, ok = mergeEdits(l.ps, gone, came)
	if ok && len(ps) == 0 {
		return nil, false, nil // a whole read says the list is empty
	}
	return ps, ok, nil
}

// cutLine splits text after its first line (without the newline).
func cutLine(text []byte) (line, rest []byte) {
	if i := bytes.IndexByte(text, '\n'); i >= 0 {
		return text[:i], text[i+1:]
	}
	return text, nil
}

// findLine returns how many lines of text come before one equal to
// line, looking resyncWindow lines ahead; -1 when none is.
func findLine(text, line []byte) int {
	for k := range resyncWindow {
		if len(text) == 0 {
			return -1
		}
		var l []byte
		l, text = cutLine(text)
		if bytes.Equal(l, line) {
			return k
		}
	}
	return -1
}

// commonPrefix is how many bytes a and b share from their start.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i+64 <= n && bytes.Equal(a[i:i+64], b[i:i+64]) {
		i += 64
	}
	for i+8 <= n {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// mergeEdits is ps (IPv4, address order) without the keys of gone and
// with those of came, in address order: each edit's place is found by
// binary search and the runs between them are copied. ok is false when a
// key of gone is not in ps, which a walk of ps's own text cannot give.
func mergeEdits(ps []netip.Prefix, gone, came []uint64) (out []netip.Prefix, ok bool) {
	prefixkey.SortKeys(gone)
	prefixkey.SortKeys(came)
	// at is the index of the first prefix of ps whose key is not below k.
	at := func(k uint64) int {
		i, _ := slices.BinarySearchFunc(ps, k, func(p netip.Prefix, k uint64) int {
			pk, _ := prefixkey.Pack4(0, p)
			return cmp.Compare(pk, k)
		})
		return i
	}
	out = make([]netip.Prefix, 0, len(ps)-len(gone)+len(came))
	from, g, c := 0, 0, 0 // ps[from:] is still to copy
	for g < len(gone) || c < len(came) {
		if c < len(came) && (g == len(gone) || came[c] <= gone[g]) {
			i := max(at(came[c]), from)
			out = append(append(out, ps[from:i]...), prefixkey.Unpack4(came[c]))
			from, c = i, c+1
			continue
		}
		i := max(at(gone[g]), from)
		if i == len(ps) || ps[i] != prefixkey.Unpack4(gone[g]) {
			return nil, false
		}
		out = append(out, ps[from:i]...)
		from, g = i+1, g+1
	}
	return append(out, ps[from:]...), true
}
