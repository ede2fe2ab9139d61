package fib

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// FuzzParseQuery: any input either parses into a query that survives a
// round trip through its String form, or fails with an error that names
// the offending word; the batch path agrees.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7", "to 10.1.0.5 from 10.2.0.1 iif v1 oif v2 mark 0x1f uid 1500 tos 10",
		"2001:db8::1 ipproto ipv6-icmp sport 1 dport 65535 fibmatch", "fibmatch to 1.2.3.4 dev eth0 dsfield 0xb8",
		"1.2.3.4/32", "1.2.3.0/24", "fe80::1%eth0", "10.0.0.1 from 2001:db8::1", "mark", "10.0.0.1 mark 0x", "10.0.0.1 mark 99999999999",
		"10.0.0.1 ipproto gre", "10.0.0.1 ipproto 300", "10.0.0.1 tos zz", "10.0.0.1 sport 65536", "10.0.0.1 10.0.0.2",
		"10.0.0.1 iif a/b", "10.0.0.1 uid 010", "", "to", "::ffff:1.2.3.4",
	} {
		f.Add(s)
	}
	k := newKState(f)
	f1(k)
	fib, err := New(k.state())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// words are split on ASCII blanks, like the batch reader does
		words := strings.FieldsFunc(s, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) || r == '\n' })
		q, err := ParseQuery(words)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) || err.Error() == "" {
				t.Fatalf("%q: error %v is not a QueryError with a message", s, err)
			}
		} else {
			if !q.To.IsValid() {
				t.Fatalf("%q: parsed without a destination", s)
			}
			q2, err := ParseQuery(strings.Fields(q.String()))
			if err != nil && strings.ContainsAny(q.IIF+q.OIF, "\u0085\u00a0") {
				return // a device name with a non-ASCII blank does not survive strings.Fields
			}
			if err != nil {
				t.Fatalf("%q: %q does not parse back: %v", s, q.String(), err)
			}
			if q2 != q {
				t.Fatalf("%q: round trip %+v != %+v", s, q2, q)
			}
			r := fib.Lookup(q)
			if !json.Valid(r.JSON()) {
				t.Fatalf("%q: invalid JSON %s", s, r.JSON())
			}
			_ = r.Text()
			_ = r.IPText(true)
		}
		// the batch path sees the same query
		bw := fib.newBatchWorker(true)
		out, ok := bw.line([]byte(s), nil)
		if strings.ContainsAny(s, "\n") {
			return
		}
		if ok != (len(words) > 0 && words[0][0] != '#') {
			t.Fatalf("%q: batch skipped=%v", s, !ok)
		}
		if ok && !json.Valid(bytes.TrimSpace(out)) {
			t.Fatalf("%q: batch wrote invalid JSON %s", s, out)
		}
	})
}

// FuzzStateParse: state.Parse never panics and fails with an error
// naming the file; what it accepts, New either accepts or refuses with an
// error, and lookups on it never panic and print valid JSON.
func FuzzStateParse(f *testing.F) {
	for _, c := range []string{"T17", "T30", "T43", "T55", "T61", "T36"} {
		var b bytes.Buffer
		if err := buildCase(f, c).state().Write(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte(`{"version":1,"links":[{"index":1,"name":"lo","up":true}],"routes":[{"table":254,"type":"unicast","dst":"0.0.0.0/0","nexthops":[{"gateway":"10.0.0.1","dev":"lo"}]}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := state.Parse(data, "snap.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "snap.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		fb, err := New(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fib: ") {
				t.Fatalf("New: unexpected error form: %v", err)
			}
			return
		}
		queries := []Query{{To: netip.MustParseAddr("203.0.113.7")}, {To: netip.MustParseAddr("2001:db8::1")},
			{To: netip.MustParseAddr("255.255.255.255")}, {To: netip.MustParseAddr("0.0.0.0")}, {To: netip.MustParseAddr("ff02::1")}}
		for i, a := range s.Addrs {
			if i > 8 || !a.Prefix.IsValid() {
				break
			}
			queries = append(queries, Query{To: a.Prefix.Addr()}, Query{To: a.Prefix.Addr(), From: a.Prefix.Addr(), FibMatch: true})
		}
		for i, r := range s.Routes {
			if i > 8 {
				break
			}
			q := Query{To: r.Dst.Addr()}
			if len(s.Links) > 0 {
				q.IIF = s.Links[i%len(s.Links)].Name
				q.From = r.Dst.Addr()
			}
			queries = append(queries, q)
		}
		for _, q := range queries {
			r := fb.Lookup(q)
			if !json.Valid(r.JSON()) {
				t.Fatalf("invalid JSON for %v: %s", q, r.JSON())
			}
			_ = r.Text()
		}
	})
}

// TestWriteFuzzCorpus writes the seed corpora under testdata/fuzz when
// TUNROUTE_WRITE_CORPUS is set (they are checked in).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("TUNROUTE_WRITE_CORPUS") == "" {
		t.Skip("set TUNROUTE_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	write := func(name string, i int, v string) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n%s(%q)\n", map[string]string{"FuzzParseQuery": "string", "FuzzStateParse": "[]byte"}[name], v)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, q := range []string{
		"203.0.113.7 from 10.1.0.1 iif v1 mark 0x10 ipproto tcp sport 1 dport 2 uid 3 tos 10",
		"route get 2001:db8::1 oif v2", "10.0.0.1 tos 0xfc fibmatch", "10.0.0.1 from", "10.0.0.1 ipproto ipv6-icmp",
	} {
		write("FuzzParseQuery", i, q)
	}
	for i, c := range []string{"T01", "T33", "T41", "T58"} {
		var b bytes.Buffer
		if err := buildCase(t, c).state().Write(&b); err != nil {
			t.Fatal(err)
		}
		write("FuzzStateParse", i, b.String())
	}
	write("FuzzStateParse", 10, `{"version":1,"links":[{"index":1,"name":"lo","up":true,"loopback":true},{"index":2,"name":"eth0","up":true,"carrier":true}],"addrs":[{"dev":"eth0","prefix":"10.0.0.2/24","scope":"global","flags":[]}],"routes":[{"table":254,"type":"unicast","dst":"0.0.0.0/0","protocol":"boot","scope":"global","flags":[],"nexthops":[{"gateway":"10.0.0.1","dev":"eth0","flags":["onlink"]},{"gateway":"10.0.0.9","dev":"eth0","weight":3,"flags":["dead"]}]}],"rules":[{"family":4,"priority":10,"not":true,"from":"10.0.0.0/8","fwmark":1,"fwmask":255,"action":"goto","goto":20,"suppress_prefixlength":-1,"suppress_ifgroup":-1,"protocol":"boot"}]}`)
}

// parseV4 accepts exactly what netip.ParseAddr accepts as IPv4.
func FuzzParseV4(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "::1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseV4(s)
		a, err := netip.ParseAddr(s)
		want := err == nil && a.Is4()
		if ok != want || ok && u4(v) != a {
			t.Fatalf("%q: parseV4 %v %v, netip %v %v", s, u4(v), ok, a, err)
		}
	})
}

// parseV6 accepts a subset of what netip.ParseAddr accepts, with the same
// value.
func FuzzParseV6(f *testing.F) {
	for _, s := range []string{"::", "::1", "2001:db8::1", "1:2:3:4:5:6:7:8", "1::", "::ffff:1.2.3.4", "fe80::1%eth0",
		"1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "12345::", ":1::", "1:::2", "1::2::3", "0:0:0:0:0:0:0:0", "ABCD::ef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := parseV6(s)
		b, err := netip.ParseAddr(s)
		if !ok {
			if err == nil && b.Is6() && !strings.ContainsAny(s, ".%") {
				t.Fatalf("%q: netip parses %v, parseV6 does not", s, b)
			}
			return
		}
		if err != nil || a != b {
			t.Fatalf("%q: parseV6 %v, netip %v %v", s, a, b, err)
		}
	})
}
