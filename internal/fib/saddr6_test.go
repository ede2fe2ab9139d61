package fib

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The IPv6 source selection fast path picks what the full RFC 6724
// comparison picks.
func TestSaddr6FastPath(t *testing.T) {
	rnd := rand.New(rand.NewPCG(9, 9))
	for _, c := range []string{"T51", "T58", "T59", "T60", "T55"} {
		k := buildCase(t, c)
		k.ip("addr add 2001:db8:9::5/64 dev v2 nodad preferred_lft 0")
		k.ip("addr add fd00::1/64 dev v1 nodad")
		f, err := New(k.state())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3000; i++ {
			var d netip.Addr
			switch i % 4 {
			case 0:
				d = join6(0x20010db8<<32|uint64(rnd.IntN(10))<<16, rnd.Uint64())
			case 1:
				d = join6(0xfd00<<48, uint64(rnd.IntN(4)))
			case 2:
				as := f.links[rnd.IntN(len(f.links))].a6
				if len(as) == 0 {
					continue
				}
				d = as[rnd.IntN(len(as))].addr
			default:
				d = join6(0x2000<<48|rnd.Uint64()>>3, rnd.Uint64())
			}
			hi, lo := split6(d)
			for _, l := range f.links {
				fast, okf := f.devGetSaddr6(l, d, hi, lo)
				save := l.v6sole
				l.v6sole = -1
				slow, oks := f.devGetSaddr6(l, d, hi, lo)
				l.v6sole = save
				if fast != slow || okf != oks {
					t.Fatalf("%s: dev %s dst %s: fast %s %v, full %s %v", c, l.name, d, fast, okf, slow, oks)
				}
			}
		}
	}
}
