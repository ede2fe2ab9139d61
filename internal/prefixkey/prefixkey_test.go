package prefixkey

import (
	"cmp"
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
		// In order already (equal keys keep their order), and in order but
		// for the last key.
		Sort(a)
		if !slices.Equal(a, want) {
			t.Fatalf("n=%d: sorting sorted keys changed them", n)
		}
		// In address order, the prefixes of each address longest first
		// (a kernel dump's order).
		c := slices.Clone(want)
		for i := range c {
			c[i].K = want[i-i%3].K&^0xff | uint64(32-i%3)
		}
		wantC := slices.Clone(c)
		slices.SortStableFunc(wantC, func(p, q Keyed) int { return cmp.Compare(p.K, q.K) })
		Sort(c)
		if !slices.Equal(c, wantC) {
			t.Fatalf("n=%d: keys in address order, lengths longest first, are not sorted", n)
		}
		if n > 1 {
			b := append(slices.Clone(want[1:]), want[0])
			Sort(b)
			if !slices.Equal(b, want) {
				t.Fatalf("n=%d: keys in order but for the last are not sorted", n)
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

func TestSortKeysAgainstSlices(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 100, 5000, 70000} {
		for _, spread := range []uint64{1, 1 << 8, 1 << 40, 1 << 63} {
			a := make([]uint64, n)
			for i := range a {
				a[i] = r.Uint64N(spread) << 3
			}
			want := slices.Clone(a)
			slices.Sort(want)
			SortKeys(a)
			if !slices.Equal(a, want) {
				t.Fatalf("n %d spread %d: not sorted as slices.Sort sorts", n, spread)
			}
			SortKeys(a) // sorted already
			if !slices.Equal(a, want) {
				t.Fatalf("n %d spread %d: a sorted slice was changed", n, spread)
			}
		}
	}
}

func TestUnpack4(t *testing.T) {
	for _, s := range []string{"0.0.0.0/0", "10.1.2.0/24", "255.255.255.255/32", "192.0.2.128/25"} {
		p := netip.MustParsePrefix(s)
		k, _ := Pack4(77, p)
		if got := Unpack4(k); got != p {
			t.Errorf("Unpack4(Pack4(%v)) = %v", p, got)
		}
	}
}
