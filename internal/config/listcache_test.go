package config

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestListCacheReadsAsAWholeRead: a list edited again and again (lines
// removed, inserted, replaced, moved, blank and comment lines, blocks,
// duplicates, bad lines, IPv6 lines, a new order) reads through the cache
// exactly as a whole read: the same prefixes, or the same error.
func TestListCacheReadsAsAWholeRead(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	line := func() string {
		switch r.IntN(40) {
		case 0:
			return ""
		case 1:
			return "# a comment"
		case 2:
			return "  10.9.0.0/16   # with a comment"
		case 3:
			return "2001:db8::/48"
		case 4:
			return "10.1.2.3/8" // host bits: an error
		}
		return fmt.Sprintf("%d.%d.%d.0/24", 1+r.IntN(4), r.IntN(4), r.IntN(256))
	}
	good := func() string {
		for {
			if l := line(); l != "10.1.2.3/8" && !strings.Contains(l, ":") {
				return l
			}
		}
	}
	var lines []string
	for range 3000 {
		lines = append(lines, good())
	}
	c := &ListCache{}
	edits, fromCache := 0, 0
	for round := range 300 {
		switch op := r.IntN(10); {
		case op < 3: // remove a few lines
			for range 1 + r.IntN(5) {
				if len(lines) > 1 {
					i := r.IntN(len(lines))
					lines = slices.Delete(lines, i, i+1)
				}
			}
		case op < 5: // insert, some anywhere
			for range 1 + r.IntN(5) {
				i := r.IntN(len(lines) + 1)
				lines = slices.Insert(lines, i, line())
			}
		case op < 7: // replace
			for range 1 + r.IntN(5) {
				lines[r.IntN(len(lines))] = line()
			}
		case op == 7: // a block of 40 new lines, or a block removed
			i := r.IntN(len(lines))
			if r.IntN(2) == 0 {
				var block []string
				for range 40 {
					block = append(block, good())
				}
				lines = slices.Insert(lines, i, block...)
			} else {
				lines = slices.Delete(lines, i, min(i+40, len(lines)))
			}
		case op == 8: // a duplicate, or a new order
			if r.IntN(3) == 0 {
				r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
			} else {
				lines = append(lines, lines[r.IntN(len(lines))])
			}
		case op == 9: // the bad lines go
			lines = slices.DeleteFunc(lines, func(l string) bool { return l == "10.1.2.3/8" || strings.Contains(l, ":") })
		}
		text := strings.Join(lines, "\n")
		if r.IntN(2) == 0 {
			text += "\n"
		}
		cached, hadIt := c.lists["list.txt"]
		got, err := c.parse("list.txt", []byte(text))
		want, _, werr := parsePrefixList("list.txt", []byte(text))
		if fmt.Sprint(err) != fmt.Sprint(werr) || !slices.Equal(got, want) {
			t.Fatalf("round %d: through the cache %d prefixes, %v; read whole %d prefixes, %v", round, len(got), err, len(want), werr)
		}
		if hadIt {
			edits++
			if l := c.lists["list.txt"]; l != nil && l == cached && bytes.Equal(l.data, []byte(text)) {
				fromCache++
			}
		}
	}
	if edits < 100 || fromCache < 100 {
		t.Errorf("only %d of the reads had a list in the cache, %d were edits of it", edits, fromCache)
	}
}

// TestListCacheDropsListsNoLongerRead: a config that no longer reads a
// list does not keep it.
func TestListCacheDropsListsNoLongerRead(t *testing.T) {
	c := &ListCache{}
	gen := c.begin()
	for _, name := range []string{"a.txt", "b.txt"} {
		if _, err := c.parse(name, []byte("192.0.2.0/24\n")); err != nil {
			t.Fatal(err)
		}
	}
	c.sweep(gen)
	gen = c.begin()
	if _, err := c.parse("a.txt", []byte("192.0.2.0/24\n")); err != nil {
		t.Fatal(err)
	}
	c.sweep(gen)
	if _, ok := c.lists["b.txt"]; ok || len(c.lists) != 1 {
		t.Errorf("kept %d lists, b.txt among them: %v", len(c.lists), ok)
	}
}

// TestListCacheThroughLoad: a config read twice with a cache gives the
// second read's list as edited, and refuses a bad line by file and line.
func TestListCacheThroughLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile := func(name, text string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := writeFile("tunroute.yaml", "identities:\n  - {name: vpn, device: wg0, addresses: [10.30.0.2], gateway: 10.30.0.1}\nroutes:\n  - {to_file: list.txt, via: vpn, table: 1000}\n")
	writeFile("list.txt", "192.0.2.0/24\n198.51.100.0/24\n")
	c := &ListCache{}
	if _, err := Load(cfg, Options{Lists: c, TableNames: map[string]uint32{}}); err != nil {
		t.Fatal(err)
	}
	writeFile("list.txt", "192.0.2.0/24\n203.0.113.0/24\n")
	got, err := Load(cfg, Options{Lists: c, TableNames: map[string]uint32{}})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("203.0.113.0/24")}
	if !slices.Equal(got.Routes[0].To, want) {
		t.Errorf("second read: %v, want %v", got.Routes[0].To, want)
	}
	writeFile("list.txt", "192.0.2.0/24\n203.0.113.1/24\n")
	if _, err := Load(cfg, Options{Lists: c, TableNames: map[string]uint32{}}); err == nil || !strings.Contains(err.Error(), "list.txt:2:") {
		t.Errorf("a bad line: %v, want an error naming list.txt:2", err)
	}
}
