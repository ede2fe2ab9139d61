package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPrefixFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tunroute.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "list.txt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# a list\n198.51.100.0/24\n\n  203.0.113.7  # one host\r\n2001:db8::/32\n\t\n192.0.2.0/25") // no final newline
	path, got, err := readPrefixFile(cfg, "list.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "list.txt") {
		t.Errorf("path %s", path)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.0.2.0/25"),
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("prefix %d: got %s, want %s", i, got[i], want[i])
		}
	}

	for _, c := range []struct{ text, err string }{
		{"198.51.100.0/24\n198.51.100.1/24\n", "list.txt:2: 198.51.100.1/24 has host bits set"},
		{"198.51.100.0/24\n\n# x\nnot-a-prefix # y\n", `list.txt:4: "not-a-prefix" is not a prefix or address`},
		{"# only comments\n\n", "holds no prefix"},
	} {
		write(c.text)
		_, _, err := readPrefixFile(cfg, "list.txt", nil)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: got error %v, want one containing %q", c.text, err, c.err)
		}
	}
	if _, _, err := readPrefixFile(cfg, "missing.txt", nil); err == nil || !strings.Contains(err.Error(), "cannot read the route list") {
		t.Errorf("missing list: %v", err)
	}
}
