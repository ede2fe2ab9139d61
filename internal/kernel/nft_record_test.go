package kernel

// Tests of the firewall's encoding that need no kernel: rules encoded,
// marshalled and decoded as the kernel would dump them, then read back.

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// asDumped encodes r and returns what a dump of it would give: its
// expressions decoded from their wire form, its userdata, and its sets'
// elements under the names the kernel gives them (in reverse order, as
// the kernel's interval sets dump them).
func asDumped(t *testing.T, r *state.FwRule) (*kernelRule, map[string][]setElem) {
	t.Helper()
	var id uint32
	code, err := encodeRule(r, func() uint32 { id++; return id })
	if err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	ud, err := ruleUserdata(r, code)
	if err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	var wire []byte
	for _, x := range code.exprs {
		b, err := expr.Marshal(unix.NFPROTO_INET, x)
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, listElem(b)...)
	}
	exprs, err := parseExprs(wire)
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string][]setElem{}
	k := 0
	for _, x := range exprs {
		if l, ok := x.(*expr.Lookup); ok {
			l.SetName, l.SetID = fmt.Sprintf("__set%d", k), 0
			es := slices.Clone(code.sets[k].elems)
			slices.Reverse(es)
			sets[l.SetName] = es
			k++
		}
	}
	return &kernelRule{chain: "c", exprs: exprs, udata: ud, handle: 7}, sets
}

func readBack(t *testing.T, kr *kernelRule, sets map[string][]setElem) state.FwRule {
	t.Helper()
	r, err := kr.fwRule(func(name string) ([]setElem, error) {
		es, ok := sets[name]
		if !ok {
			return nil, fmt.Errorf("no set %s", name)
		}
		return es, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// withIDs gives the cgroup rules of fw made-up ids.
func withIDs(fw *state.Firewall) *state.Firewall {
	fw = copyFirewall(fw)
	for ci := range fw.Chains {
		for ri := range fw.Chains[ci].Rules {
			if r := &fw.Chains[ci].Rules[ri]; r.Cgroup != "" {
				r.CgroupID = uint64(1000 + ci*100 + ri)
			}
		}
	}
	return fw
}

func TestNftRuleRoundTrip(t *testing.T) {
	var rules []state.FwRule
	for _, fw := range []*state.Firewall{withIDs(vpnUpFirewall()), withIDs(everyFieldFirewall())} {
		for _, c := range fw.Chains {
			rules = append(rules, c.Rules...)
		}
	}
	rules = append(rules,
		state.FwRule{Comment: "counted", Counter: true, Packets: 12, Bytes: 3456, Verdict: "drop"},
		state.FwRule{Family: 4, Daddr: pfxs("0.0.0.0/0", "10.0.0.0/8"), Verdict: "accept"},              // up to the largest key
		state.FwRule{Family: 6, Saddr: pfxs("::/0", "2001:db8::/32"), Verdict: "accept"},                // overlapping: merged
		state.FwRule{Proto: 6, DPorts: []state.PortRange{{Start: 0, End: 65535}, {Start: 80, End: 80}}}, // whole range
		state.FwRule{IIF: []string{"a", "a", "b"}, ICMPv6Types: []uint8{1, 1, 2}, Proto: 58},            // duplicates
		// the kill switch's link-local and re-route matches
		state.FwRule{Family: 6, Proto: 58, ICMPv6Types: []uint8{133, 135, 136}, HopLimit: 255, SaddrLocalOIF: true,
			Daddr: pfxs("fe80::/10", "ff02::/16"), Verdict: "accept"},
		state.FwRule{Family: 4, IPOptions: true, NotDaddr: pfxs("224.0.0.0/4"), Counter: true, Verdict: "drop"},
		state.FwRule{Family: 6, RoutingHeader: true, Counter: true, Verdict: "drop"},
		state.FwRule{Forwarded: true, Verdict: "accept"},
	)
	for _, r := range rules {
		t.Run(r.String(), func(t *testing.T) {
			kr, sets := asDumped(t, &r)
			got := readBack(t, kr, sets)
			if !reflect.DeepEqual(got, r) {
				t.Errorf("read back\n%#v\nwant\n%#v", got, r)
			}
		})
	}
}

// TestNftLongRecord: a rule whose JSON does not fit in 256 bytes keeps
// its lists in its sets, and reads back exactly, in the given order.
func TestNftLongRecord(t *testing.T) {
	var v4, v6 []netip.Prefix
	for i := 30; i > 0; i-- {
		v4 = append(v4, netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", i*7)))
		v6 = append(v6, netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/48", i)))
	}
	ports := []state.PortRange{{Start: 9000, End: 9100}, {Start: 22, End: 22}, {Start: 443, End: 443}, {Start: 80, End: 81}}
	for _, r := range []state.FwRule{
		{Comment: strings.Repeat("long comment ", 4), Family: 4, Daddr: v4, NotOIF: []string{"wg9", "lo", "tun3"}, Proto: 6, DPorts: ports, Verdict: "accept"},
		{Comment: "v6", Family: 6, Saddr: v6, NotDaddr: v6[:3], Proto: 58, ICMPv6Types: []uint8{143, 1, 136, 135, 128}, Verdict: "drop"},
		// Overlapping prefixes cannot read back from the set, so they stay
		// in the record while the lists that can leave it.
		{Comment: strings.Repeat("c", 120), Family: 4, Daddr: pfxs("10.0.0.0/8", "10.1.0.0/16"), Saddr: v4[:12], Verdict: "drop"},
	} {
		kr, sets := asDumped(t, &r)
		_, rec := parseUserdata(kr.udata)
		if !strings.Contains(string(rec), `"from_sets"`) {
			t.Errorf("%s: the record kept its lists: %s", r.Comment, rec)
		}
		if len(kr.udata) > maxUserdata {
			t.Errorf("%d bytes of userdata", len(kr.udata))
		}
		if got := readBack(t, kr, sets); !reflect.DeepEqual(got, r) {
			t.Errorf("read back\n%s\nwant\n%s", &got, &r)
		}
	}
	// Too much even without the lists.
	r := state.FwRule{Comment: strings.Repeat("x", 200), Cgroup: strings.Repeat("a/", 40) + "b", CgroupID: 1}
	code, err := encodeRule(&r, func() uint32 { return 1 })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ruleUserdata(&r, code); err == nil || !strings.Contains(err.Error(), "too large to record") {
		t.Errorf("got %v", err)
	}
}

// TestNftRuleEdited: a rule that does not match its record, or has none,
// reads back as an UnknownRule.
func TestNftRuleEdited(t *testing.T) {
	base := state.FwRule{Comment: "dns", Family: 4, Proto: 17, DPorts: ports1(53), NotDaddr: pfxs("10.30.0.1/32", "10.30.0.2/32"), Counter: true, Verdict: "drop"}
	for _, tc := range []struct {
		name string
		edit func(kr *kernelRule, sets map[string][]setElem)
		why  string
	}{
		{"no userdata", func(kr *kernelRule, _ map[string][]setElem) { kr.udata = nil }, "no tunroute record"},
		{"comment only (nft replace rule)", func(kr *kernelRule, _ map[string][]setElem) {
			kr.udata = append([]byte{udataComment, 4}, "dns\x00"...)
		}, `no tunroute record (comment "dns")`},
		{"port changed", func(kr *kernelRule, _ map[string][]setElem) {
			for _, x := range kr.exprs {
				if c, ok := x.(*expr.Cmp); ok && len(c.Data) == 2 {
					c.Data = []byte{0, 54}
				}
			}
		}, "expression 8 is"},
		{"verdict changed", func(kr *kernelRule, _ map[string][]setElem) {
			kr.exprs[len(kr.exprs)-1] = &expr.Verdict{Kind: expr.VerdictAccept}
		}, "expression 10 is"},
		{"expression added", func(kr *kernelRule, _ map[string][]setElem) {
			kr.exprs = append([]any{&expr.Counter{}}, kr.exprs...)
		}, "11 expressions, its record encodes to 10"},
		{"an expression tunroute does not write", func(kr *kernelRule, _ map[string][]setElem) {
			kr.exprs, kr.bad = nil, fmt.Errorf(`expression "log"`)
		}, `has an expression "log" that tunroute does not write`},
		{"set element changed", func(_ *kernelRule, sets map[string][]setElem) {
			sets["__set0"][0].key = []byte{10, 30, 0, 9}
		}, "the set of not_daddr differs"},
		{"record garbled", func(kr *kernelRule, _ map[string][]setElem) {
			_, rec := parseUserdata(kr.udata)
			rec[0] = '['
		}, "its record does not read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, sets := asDumped(t, &base)
			tc.edit(kr, sets)
			got := readBack(t, kr, sets)
			if !strings.HasPrefix(got.Comment, UnknownRule) || !strings.Contains(got.Comment, tc.why) {
				t.Errorf("comment %q, want %s ... %s", got.Comment, UnknownRule, tc.why)
			}
			if got.String() == base.String() {
				t.Errorf("an edited rule equals the desired one")
			}
		})
	}
}

func TestNftEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		rule state.FwRule
		want string
	}{
		{state.FwRule{Family: 5}, "family 5"},
		{state.FwRule{Daddr: pfxs("10.0.0.0/8")}, "daddr: an address match needs the rule's family"},
		{state.FwRule{Family: 6, Saddr: pfxs("10.0.0.0/8")}, "saddr: 10.0.0.0/8 is not an IPv6 prefix"},
		{state.FwRule{Family: 4, NotDaddr: []netip.Prefix{{}}}, "not_daddr: invalid Prefix is not an IPv4 prefix"},
		{state.FwRule{ICMPv6Types: []uint8{128}}, "icmpv6_types needs proto 58"},
		{state.FwRule{CtState: []string{"established", "bogus"}}, `ct state "bogus"`},
		{state.FwRule{Verdict: "continue"}, `verdict "continue"`},
		{state.FwRule{OIF: []string{"a-very-long-name0"}}, `interface name "a-very-long-name0"`},
		{state.FwRule{OIF: []string{"wg*", "tun0"}}, "only allowed at the end of a single name"},
		{state.FwRule{IIF: []string{"w*g"}}, "only allowed at the end"},
		{state.FwRule{DPorts: []state.PortRange{{Start: 9, End: 1}}}, "dports: range 9-1 is backwards"},
		{state.FwRule{Cgroup: "a.slice"}, `cgroup "a.slice": id not resolved`},
	} {
		_, err := encodeRule(&tc.rule, func() uint32 { return 1 })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", &tc.rule, err, tc.want)
		}
	}
	if _, err := ruleUserdata(&state.FwRule{Comment: "a\x00b"}, &ruleCode{}); err == nil {
		t.Error("a comment with NUL was accepted")
	}
}

func TestNftRuns(t *testing.T) {
	for _, p := range [][]int{{0}, {3, 2, 1, 0}, {0, 1, 2, 5, 4, 3, 7, 9, 8}, {1, 0}, {2, 0, 1}} {
		s := runs(p)
		back, err := parseRuns(s)
		if err != nil || fmt.Sprint(back) != fmt.Sprint(p) {
			t.Errorf("%v -> %q -> %v, %v", p, s, back, err)
		}
	}
	if s := runs([]int{29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}); s != "29-0" {
		t.Errorf("reversed: %q", s)
	}
	for _, bad := range []string{"", "a", "1-", "1,,2", "-1", "1-2-3", "0-99999999"} {
		if _, err := parseRuns(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestNftIntervals(t *testing.T) {
	cover := func(lo, hi string) string {
		return fmt.Sprint(intervalPrefixes(interval{netip.MustParseAddr(lo).AsSlice(), netip.MustParseAddr(hi).AsSlice()}))
	}
	for _, tc := range [][3]string{
		{"0.0.0.0", "255.255.255.255", "[0.0.0.0/0]"},
		{"10.0.0.0", "10.0.0.255", "[10.0.0.0/24]"},
		{"10.0.0.1", "10.0.0.6", "[10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32]"},
		{"::", "::", "[::/128]"},
		{"2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "[2001:db8::/32]"},
	} {
		if got := cover(tc[0], tc[1]); got != tc[2] {
			t.Errorf("%s-%s: %s, want %s", tc[0], tc[1], got, tc[2])
		}
	}
	// Adjacent prefixes stay apart, overlapping ones merge, one that
	// reaches the largest key has no end element.
	es := intervalElems([]interval{prefixInterval(pfxs("10.0.0.128/25")[0]), prefixInterval(pfxs("10.0.0.0/25")[0]),
		prefixInterval(pfxs("192.0.2.0/24")[0]), prefixInterval(pfxs("192.0.2.7/32")[0]), prefixInterval(pfxs("255.0.0.0/8")[0])})
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%v%s", netip.AddrFrom4([4]byte(e.key)), map[bool]string{true: "!"}[e.end]))
	}
	want := "[10.0.0.0 10.0.0.128! 10.0.0.128 10.0.1.0! 192.0.2.0 192.0.3.0! 255.0.0.0]"
	if fmt.Sprint(got) != want {
		t.Errorf("elements %v, want %s", got, want)
	}
	back, err := setValues("daddr", es)
	if err != nil || fmt.Sprint(back) != "[10.0.0.0/25 10.0.0.128/25 192.0.2.0/24 255.0.0.0/8]" {
		t.Errorf("read back %v, %v", back, err)
	}
	// nft's leading end element at key 0 is skipped.
	back, err = setValues("dports", []setElem{{key: []byte{0, 0}, end: true}, {key: []byte{0, 22}}, {key: []byte{0, 23}, end: true}})
	if err != nil || fmt.Sprint(back) != "[{22 22}]" {
		t.Errorf("read back %v, %v", back, err)
	}
}

// TestNftIntervalPrefixesRandom: the cover is contiguous, exact, and each
// prefix is the largest that starts there and stays inside.
func TestNftIntervalPrefixesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		a, b := rng.Uint32(), rng.Uint32()
		if i%2 == 0 {
			b = a + rng.Uint32N(1<<uint(rng.IntN(20)))
		}
		if b < a {
			a, b = b, a
		}
		lo, hi := netip.AddrFrom4([4]byte(be.AppendUint32(nil, a))), netip.AddrFrom4([4]byte(be.AppendUint32(nil, b)))
		ps := intervalPrefixes(interval{lo.AsSlice(), hi.AsSlice()})
		next := lo
		for k, p := range ps {
			if p.Addr() != next || p.Masked() != p {
				t.Fatalf("%s-%s: prefix %d is %s, want one at %s", lo, hi, k, p, next)
			}
			last := netip.AddrFrom4([4]byte(prefixInterval(p).hi))
			if last.Compare(hi) > 0 {
				t.Fatalf("%s-%s: %s goes beyond", lo, hi, p)
			}
			if p.Bits() > 0 {
				parent := netip.PrefixFrom(p.Addr(), p.Bits()-1)
				if parent.Masked().Addr() == p.Addr() && netip.AddrFrom4([4]byte(prefixInterval(parent).hi)).Compare(hi) <= 0 {
					t.Fatalf("%s-%s: %s could be %s", lo, hi, p, parent)
				}
			}
			if k == len(ps)-1 && last != hi {
				t.Fatalf("%s-%s: the cover ends at %s", lo, hi, last)
			}
			next = last.Next()
		}
	}
}
