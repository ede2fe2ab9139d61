package main

import (
	"io"
	"strings"
	"testing"
)

// TestReadFewQueries: a batch of at most max queries (blank and comment
// lines aside) is read whole; a longer one, or one with a line longer
// than any query, is left for the whole path exactly as it was.
func TestReadFewQueries(t *testing.T) {
	long := strings.Repeat("x", 8192)
	for _, c := range []struct {
		in   string
		few  bool
		what string
	}{
		{"a\nb\nc", true, "three queries, no final newline"},
		{"# c\n\n  \na\nb\nc\n", true, "three queries and others"},
		{"a\nb\nc\nd\n", false, "four queries"},
		{"a\n" + long + "\nb\n", false, "a long line"},
		{"", true, "nothing"},
	} {
		in := io.Reader(strings.NewReader(c.in))
		head, few, err := readFewQueries(&in, 3)
		if err != nil || few != c.few {
			t.Errorf("%s: few %v, %v", c.what, few, err)
			continue
		}
		if few {
			if string(head) != c.in {
				t.Errorf("%s: read %q", c.what, head)
			}
			continue
		}
		rest, err := io.ReadAll(in)
		if err != nil || string(rest) != c.in {
			t.Errorf("%s: the whole path reads %d bytes of %d, %v", c.what, len(rest), len(c.in), err)
		}
	}
}
