package config

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/tunroute/tunroute/internal/prefixkey"
	"strconv"
	"testing"
)

// TestPlainLine4AgreesWithParsePrefix: whatever the fast path of a
// route list's lines accepts, ParsePrefix accepts as the same prefix;
// edge cases and random mutations of valid lines.
func TestPlainLine4AgreesWithParsePrefix(t *testing.T) {
	lines := []string{"10.0.0.0/8", "10.0.0.1", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.0/24", "1.2.3.4/24",
		"01.2.3.0/24", "1.2.3.0/024", "1.2.3.0/33", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.4/", "1.2.3.4/3x",
		"1..2.3", "1.2.3.4 ", "1.2.3.0/24/1", "0.0.0.0", "00.0.0.0", "1.2.3.4/0", "::1", "1000.1.1.1", "9.9.9.9/32"}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "0123456789./ x:"
	for range 20000 {
		b := []byte(strconv.Itoa(r.IntN(300)) + "." + strconv.Itoa(r.IntN(300)) + "." + strconv.Itoa(r.IntN(256)) + "." +
			strconv.Itoa(r.IntN(256)) + "/" + strconv.Itoa(r.IntN(40)))
		for range r.IntN(3) {
			b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
		}
		lines = append(lines, string(b), strconv.Itoa(r.IntN(256))+"."+strconv.Itoa(r.IntN(256))+".0.0/16")
	}
	fast := 0
	for _, l := range lines {
		k, n, ok := plainLine4([]byte(l))
		if !ok {
			continue
		}
		fast++
		want, err := ParsePrefix(l)
		if p := prefixkey.Unpack4(k); err != nil || want != p || n != len(l) {
			t.Errorf("%q: fast path %v (%d bytes), ParsePrefix %v, %v", l, p, n, want, err)
		}
		if k2, n2, ok := plainLine4([]byte(l + "\n# next line")); !ok || k2 != k || n2 != len(l)+1 {
			t.Errorf("%q then a newline: fast path %v %d %v", l, prefixkey.Unpack4(k2), n2, ok)
		}
	}
	if fast < 20000 {
		t.Errorf("the fast path took only %d of %d lines", fast, len(lines))
	}
}

// BenchmarkReadPrefixFile reads a million-line IPv4 route list in random
// order, the shape of bench/routes.sh's lists (mostly /24s):
//
//	go test ./internal/config -run '^$' -bench ReadPrefixFile
func BenchmarkReadPrefixFile(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(path, benchList(1_000_000, 1), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, ps, err := readPrefixFile(filepath.Join(dir, "tunroute.yaml"), "list.txt", nil); err != nil || len(ps) != 1_000_000 {
			b.Fatal(len(ps), err)
		}
	}
}

// BenchmarkListCacheOnePercent reads, through a ListCache, a
// million-line list and the same list with 1% of its lines removed here
// and there and as many new ones at its end, in turn (tunroute run's
// applies of bench/routes.sh's 1% change):
//
//	go test ./internal/config -run '^$' -bench ListCacheOnePercent
func BenchmarkListCacheOnePercent(b *testing.B) {
	full := benchList(1_000_000, 1)
	lines := bytes.SplitAfter(full, []byte{'\n'})
	var changed []byte
	for i, l := range lines {
		if i%100 != 7 {
			changed = append(changed, l...)
		}
	}
	changed = append(changed, benchList(10_000, 2)...)
	c := &ListCache{}
	texts := [][]byte{full, changed}
	for i := range b.N + 1 {
		if i == 1 {
			b.ResetTimer() // the first read is whole
		}
		if ps, err := c.parse("list.txt", texts[i%2]); err != nil || len(ps) < 990_000 {
			b.Fatal(len(ps), err)
		}
	}
}

// benchList is a route list of n distinct /24s in random order.
func benchList(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	var buf []byte
	seen := map[uint32]bool{}
	for len(seen) < n {
		a := uint32(r.IntN(220)+1)<<24 | uint32(r.IntN(1<<16))<<8
		if seen[a] {
			continue
		}
		seen[a] = true
		buf = fmt.Appendf(buf, "%d.%d.%d.0/24\n", a>>24, a>>16&0xff, a>>8&0xff)
	}
	return buf
}
