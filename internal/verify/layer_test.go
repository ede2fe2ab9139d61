package verify

import (
	"net/netip"
	"testing"
)

// TestLayerChains: nested prefixes give each stretch of addresses the
// chain of prefixes that hold it; the groups tell apart exactly the
// stretches whose chains differ.
func TestLayerChains(t *testing.T) {
	entry := func(p, key string) layerEntry {
		lo, hi := prefixRange(netip.MustParsePrefix(p))
		return layerEntry{lo, hi, key, false}
	}
	max := maxAddr(6)
	chains := newChainTable()
	segs := layer([]layerEntry{entry("fe80::/64", "A"), entry("fe80::1/128", "B"), entry("fe80::5/128", "B"), entry("::/0", "D")}, max, chains)
	gs := overlay([][]seg{segs}, max)
	find := func(a string) int {
		v := addrU(netip.MustParseAddr(a))
		for i := range gs {
			if gs[i].contains(v) {
				return i
			}
		}
		t.Fatalf("%s in no group", a)
		return -1
	}
	if find("fe80::1") != find("fe80::5") {
		t.Errorf("fe80::1 and ::5 hold the same routes but are apart")
	}
	if find("fe80::1") == find("fe80::2") || find("fe80::2") != find("fe80::ffff") || find("fe80::2") == find("2001:db8::1") {
		t.Errorf("groups: %d %d %d %d", find("fe80::1"), find("fe80::2"), find("fe80::ffff"), find("2001:db8::1"))
	}
	if find("fe80:0:0:1::1") != find("2001:db8::1") {
		t.Errorf("outside fe80::/64 is only the default")
	}
}
