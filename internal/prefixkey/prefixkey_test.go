package prefixkey

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestSortAgainstSlices(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 255, 256, 10000} {
		a := make([]Keyed, n)
		for i := range a {
			a[i] = Keyed{K: uint64(r.Uint32())<<8 | uint64(r.IntN(33)) | 1000<<40, V: uint64(i)}
		}
		want := slices.Clone(a)
		slices.SortStableFunc(want, func(p, q Keyed) int {
			if p.K < q.K {
				return -1
			}
			if p.K > q.K {
				return 1
			}
			return 0
		})
		Sort(a)
		if !slices.Equal(a, want) {
			t.Fatalf("n=%d: radix sort differs from a stable sort", n)
		}
		for _, e := range a {
			if i, ok := Search(a, e.K); !ok || a[i].K != e.K {
				t.Fatalf("search lost %x", e.K)
			}
		}
	}
}

func TestPack4(t *testing.T) {
	a, _ := Pack4(254, netip.MustParsePrefix("10.1.0.0/16"))
	b, _ := Pack4(254, netip.MustParsePrefix("10.1.0.0/24"))
	c, _ := Pack4(255, netip.MustParsePrefix("10.1.0.0/16"))
	if a == b || a == c || a > b {
		t.Errorf("keys: %x %x %x", a, b, c)
	}
	if _, ok := Pack4(1<<24, netip.MustParsePrefix("10.0.0.0/8")); ok {
		t.Error("a table over 24 bits was packed")
	}
	if _, ok := Pack4(1, netip.MustParsePrefix("2001:db8::/32")); ok {
		t.Error("IPv6 was packed")
	}
}
