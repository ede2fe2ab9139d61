package fib

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBatch(t *testing.T) {
	k := buildCase(t, "T43")
	f, err := New(k.state())
	if err != nil {
		t.Fatal(err)
	}
	in := "route get 203.0.113.7\n\n# comment\n10.1.0.5 from 10.2.0.1\nto 2001:db8::1 iif nosuch\n198.51.100.9 bogus\n192.0.2.1 from 10.2.0.1\n"
	for _, workers := range []int{1, 2, 7} {
		var out bytes.Buffer
		n, err := f.Batch(strings.NewReader(in), &out, BatchOptions{Workers: workers})
		if err != nil || n != 5 {
			t.Fatalf("workers %d: n=%d err=%v", workers, n, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 5 {
			t.Fatalf("got %d lines:\n%s", len(lines), out.String())
		}
		for i, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %d: %v: %s", i, err, l)
			}
		}
		for i, want := range []string{`"gateway":"10.1.0.254"`, `"dst":"10.1.0.5"`, `Cannot find device \"nosuch\"`, `"query":"198.51.100.9 bogus"`, `"gateway":"10.2.0.100"`} {
			if !strings.Contains(lines[i], want) {
				t.Errorf("workers %d line %d: want %s in %s", workers, i, want, lines[i])
			}
		}
	}
	// order is kept across many blocks
	var big strings.Builder
	for i := 0; i < 20000; i++ {
		if i%2 == 0 {
			big.WriteString("203.0.113.7\n")
		} else {
			big.WriteString("10.1.0.5 mark 7\n")
		}
	}
	var out bytes.Buffer
	n, err := f.Batch(strings.NewReader(big.String()), &out, BatchOptions{Workers: 3, NoTrace: true})
	if err != nil || n != 20000 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	for i, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		want := `"dst":"203.0.113.7"`
		if i%2 == 1 {
			want = `"dst":"10.1.0.5"`
		}
		if !strings.Contains(l, want) || strings.Contains(l, "trace") {
			t.Fatalf("line %d: %s", i, l)
		}
	}
}
