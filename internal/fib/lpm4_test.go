package fib

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gaissmai/bart"
)

// dir4 agrees with bart on lookups and parents.
func TestDir4(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 20; round++ {
		var nodes []node4
		seen := map[netip.Prefix]bool{}
		n := 1 + rnd.IntN(3000)
		for len(nodes) < n {
			bits := rnd.IntN(33)
			if rnd.IntN(3) == 0 {
				bits = 20 + rnd.IntN(13)
			}
			base := uint32(rnd.IntN(4)) << 28 // crowd a few regions
			p := netip.PrefixFrom(u4(base|rnd.Uint32()>>4), bits).Masked()
			if seen[p] {
				continue
			}
			seen[p] = true
			nodes = append(nodes, node4{addr: v4u(p.Addr()), plen: uint8(bits), parent: -1})
		}
		ref := new(bart.Table[int32])
		for i, nd := range nodes {
			ref.Insert(netip.PrefixFrom(u4(nd.addr), int(nd.plen)), int32(i))
		}
		d := buildDir4(nodes)
		for i := 0; i < 20000; i++ {
			a := uint32(rnd.IntN(4))<<28 | rnd.Uint32()>>4
			if i%3 == 0 {
				nd := nodes[rnd.IntN(len(nodes))]
				a = nd.addr | rnd.Uint32()&^mask4(int(nd.plen))
			}
			want, wok := ref.Lookup(u4(a))
			got, gok := d.lookup(a)
			if want != got || wok != gok {
				t.Fatalf("round %d: lookup %s: dir %d %v, bart %d %v", round, u4(a), got, gok, want, wok)
			}
		}
		for i, nd := range nodes {
			want := int32(-1)
			if nd.plen > 0 {
				if _, p, ok := ref.LookupPrefixLPM(netip.PrefixFrom(u4(nd.addr), int(nd.plen)-1)); ok {
					want = p
				}
			}
			if nd.parent != want {
				t.Fatalf("round %d: parent of %s: dir %d, bart %d", round, netip.PrefixFrom(u4(nd.addr), int(nd.plen)), nd.parent, want)
			}
			_ = i
		}
	}
}

// The answers on a state large enough for dir4 equal those with bart only.
func TestDir4Answers(t *testing.T) {
	s, spec := bigState(5, 40000, 4000, 200)
	queries := spec.Queries(6, 20000)
	withDir := newWith(t, s, &dirBytesPerRoute, 1<<20)
	withBart := newWith(t, s, &dirThreshold, 1<<30)
	if withDir.v4.tables[254].dir == nil || withBart.v4.tables[254].dir != nil {
		t.Fatal("expected dir4 in one FIB and bart in the other")
	}
	sameAnswers(t, queries, withDir, withBart, "dir", "bart")
}
