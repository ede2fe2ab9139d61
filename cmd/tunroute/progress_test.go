package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	if newProgressBar(&buf) != nil {
		t.Fatal("a buffer is not a terminal: no bar")
	}
	p := &progressBar{w: &buf, minTotal: 100}
	p.update(10, 50) // short: quiet
	if buf.Len() != 0 {
		t.Fatalf("drew a bar for 50 objects: %q", buf.String())
	}
	p.update(0, 1000)
	p.update(1000, 1000)
	out := buf.String()
	if !strings.Contains(out, "1000/1000 100%") || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "ETA") {
		t.Fatalf("bar: %q", out)
	}
	var nilBar *progressBar
	nilBar.update(1, 2) // must not panic
	nilBar.finish()
}
