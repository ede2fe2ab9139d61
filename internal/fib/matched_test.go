package fib

import (
	"net/netip"
	"strings"
	"testing"
)

// TestMatched: the prefix of the entry an answer used, for both
// families, and none when no entry was used.
func TestMatched(t *testing.T) {
	k := newKState(nopTB{})
	for _, c := range []string{
		"link add eth0 type veth peer name eth0p", "link set eth0 up", "link set eth0p up",
		"addr add 198.51.100.10/24 dev eth0", "addr add 2001:db8::10/64 dev eth0",
		"route add default via 198.51.100.1",
		"route add 203.0.113.0/24 via 198.51.100.2",
		"route add 2001:db8:5::/48 via 2001:db8::1",
		"route add 128.0.0.0/1 via 198.51.100.3 table 10",
		"rule add to 192.0.2.0/24 pref 100 table 10",
	} {
		k.ip(c)
	}
	f, err := New(k.state())
	if err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{
		"to 203.0.113.7":   "203.0.113.0/24",
		"to 198.18.0.1":    "0.0.0.0/0",
		"to 2001:db8:5::1": "2001:db8:5::/48",
		"to 192.0.2.1":     "128.0.0.0/1",
		"to 2001:db8:6::1": "",
	} {
		query, err := ParseQuery(strings.Fields(q))
		if err != nil {
			t.Fatal(err)
		}
		r := f.Lookup(query)
		got, ok := r.Matched()
		if want == "" {
			if ok {
				t.Errorf("%s: matched %s, want none (%s)", q, got, r.Error)
			}
			continue
		}
		if !ok || got != netip.MustParsePrefix(want) {
			t.Errorf("%s: matched %v %v, want %s\n%s", q, got, ok, want, r.Text())
		}
	}
}
