package fib

import (
	"strings"
	"testing"
)

func benchQuery(b *testing.B, name, query string) (*FIB, Query) {
	f, err := New(buildCase(b, name).state())
	if err != nil {
		b.Fatal(err)
	}
	q, err := ParseQuery(strings.Fields(query))
	if err != nil {
		b.Fatal(err)
	}
	return f, q
}

// benchLookup times the lookup of one query, the result reused.
func benchLookup(b *testing.B, table, dst string) {
	f, q := benchQuery(b, table, dst)
	var r Result
	for i := 0; i < b.N; i++ {
		f.LookupInto(&q, &r)
	}
}

func BenchmarkLookupV4Rules(b *testing.B) { benchLookup(b, "T17", "203.0.113.7") }

func BenchmarkJSONV4Rules(b *testing.B) {
	f, q := benchQuery(b, "T17", "203.0.113.7")
	var r Result
	f.LookupInto(&q, &r)
	var buf []byte
	b.SetBytes(int64(len(r.JSON())))
	for i := 0; i < b.N; i++ {
		buf = r.AppendJSON(buf[:0])
	}
}

func BenchmarkLookupV6(b *testing.B) { benchLookup(b, "T55", "2001:db8:7::1") }

func BenchmarkParseLine(b *testing.B) {
	f, _ := benchQuery(b, "T17", "203.0.113.7")
	words := []string{"203.0.113.7", "from", "10.1.0.1", "mark", "0x10"}
	for i := 0; i < b.N; i++ {
		q, _ := parseWords(words)
		_ = f.internNames(&q)
	}
}
