package fib

import (
	"strings"
	"testing"
)

// A lookup reusing its Result does not allocate.
func TestLookupAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -cover and -race")
	}
	for _, c := range []struct{ name, q string }{
		{"T30", "203.0.113.1"},
		{"T32", "203.0.113.7 mark 0x10 uid 5"},
		{"T43", "192.0.2.1"},
		{"T45", "198.51.100.9 from 10.2.0.9 iif v2"},
		{"T48", "198.51.100.9 from 10.2.0.9 iif v1"},
		{"T55", "2001:db8:7::1 from 2001:db8:77::1"},
		{"T61", "2001:db8:c::1 from 2001:db8:2::1"},
		{"T12", "203.0.113.7 oif v2"},
		{"T29", "203.0.113.65"},
	} {
		f, err := New(buildCase(t, c.name).state())
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseQuery(strings.Fields(c.q))
		if err != nil {
			t.Fatal(err)
		}
		var r Result
		var buf []byte
		f.LookupInto(&q, &r)
		n := testing.AllocsPerRun(200, func() {
			f.LookupInto(&q, &r)
			buf = r.AppendJSON(buf[:0])
		})
		if n != 0 {
			t.Errorf("%s %s: %.1f allocations per lookup", c.name, c.q, n)
		}
		bw := f.newBatchWorker(true)
		line := []byte("route get " + c.q)
		n = testing.AllocsPerRun(200, func() {
			buf, _ = bw.line(line, buf[:0])
		})
		if n != 0 {
			t.Errorf("batch %s %s: %.1f allocations per line", c.name, c.q, n)
		}
	}
}
