package kernel

import (
	"reflect"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// Requests and dumps share their message layout, so what the encoder
// writes must decode to the same object. No kernel needed.

func payload(t *testing.T, e *encoder) []byte {
	t.Helper()
	var got []byte
	n := 0
	forEach(e.b, func(m message) (bool, error) {
		got = m.data
		n++
		return false, nil
	})
	if n != 1 {
		t.Fatalf("%d messages encoded", n)
	}
	return got
}

func TestRouteRoundTrip(t *testing.T) {
	d := newDevNames([]linkInfo{{Link: state.Link{Index: 1, Name: "lo"}}, {Link: state.Link{Index: 7, Name: "va"}}, {Link: state.Link{Index: 70000, Name: "big"}}})
	mp := owned(70000, state.RouteUnicast, "10.61.0.0/16", via("10.1.0.250", "va"), via("fe80::1", "big"))
	mp.Nexthops[0].Weight, mp.Nexthops[1].Weight = 3, 1
	mp.Nexthops[1].Flags = state.NexthopOnlink
	src := owned(2000, state.RouteUnicast, "2001:db8:100::/48", via("2001:db8:5::fe", "va"))
	src.Src, src.Metric, src.MTU, src.PrefSrc = pfx("2001:db8:5::/64"), 7, 1300, addr("2001:db8:5::1")
	src.Flags = state.NexthopOnlink
	for _, r := range []*state.Route{mp, src, owned(255, state.RouteBlackhole, "0.0.0.0/0")} {
		var e encoder
		idx := make([]int, len(r.Nexthops))
		for i, nh := range r.Nexthops {
			idx[i] = map[string]int{"va": 7, "big": 70000}[nh.Dev]
		}
		if err := e.encodeRoute(state.Add, r, idx, 1); err != nil {
			t.Fatal(err)
		}
		var got state.Route
		if !decodeRoute(payload(t, &e), &got, d, &nhPool{}) {
			t.Fatal("not decoded")
		}
		want := *r
		want.Nexthops = append([]state.Nexthop(nil), r.Nexthops...)
		for i := range want.Nexthops {
			want.Nexthops[i].Index = idx[i]
			if len(want.Nexthops) == 1 {
				want.Nexthops[i].Flags = want.Flags
			}
		}
		if len(want.Nexthops) == 0 {
			want.Nexthops = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got  %s\n want %s", js(got), js(want))
		}
	}
}

func TestRuleRoundTrip(t *testing.T) {
	for _, r := range []*state.Rule{
		ownedRule(4, 101, func(r *state.Rule) {
			r.Invert, r.Mark, r.Mask, r.IIF, r.OIF, r.IPProto, r.TOS = true, 0x10, 0xff, "va", "vb", 6, 0x10
			r.SPort, r.DPort = &state.PortRange{Start: 1000, End: 2000}, &state.PortRange{Start: 443, End: 443}
			r.UID, r.Table, r.SuppressPrefixLen, r.SuppressIfGroup = &state.UIDRange{Start: 1, End: 2}, 70000, 0, 5
			r.Src, r.Dst, r.Realms, r.TunID = pfx("10.0.0.0/8"), pfx("203.0.113.0/24"), 0x30004, 77
		}),
		ownedRule(6, 5, func(r *state.Rule) { r.Action, r.Goto = state.ActionGoto, 100 }),
		ownedRule(6, 6, func(r *state.Rule) { r.L3MDev = true }),
	} {
		var e encoder
		if err := e.encodeRule(state.Add, r, 1); err != nil {
			t.Fatal(err)
		}
		got, ok := decodeRule(payload(t, &e))
		if !ok || !reflect.DeepEqual(got, *r) {
			t.Errorf("round trip:\n got  %s\n want %s", js(got), js(*r))
		}
	}
}

func TestAddrRoundTrip(t *testing.T) {
	for _, a := range []*state.Addr{
		{Dev: "va", Index: 7, Prefix: pfx("10.9.0.1/32"), Peer: pfx("10.9.0.2/32"), Label: "va:x", Proto: state.Proto,
			Scope: state.ScopeLink, Flags: state.AddrNoPrefixRoute, ValidLft: 100, PreferredLft: 50},
		{Dev: "va", Index: 7, Prefix: pfx("2001:db8::1/64"), Flags: state.AddrNoDAD, Proto: state.Proto},
		{Dev: "va", Index: 7, Prefix: pfx("203.0.113.7/24"), Broadcast: addr("203.0.113.255")},
	} {
		var e encoder
		if err := e.encodeAddr(state.Add, a, 7, 1); err != nil {
			t.Fatal(err)
		}
		got, ok := decodeAddr(payload(t, &e), func(int) string { return "va" })
		if !ok || !reflect.DeepEqual(got, *a) {
			t.Errorf("round trip:\n got  %s\n want %s", js(got), js(*a))
		}
	}
}

func TestLifetimes(t *testing.T) {
	for _, c := range []struct {
		a           state.Addr
		valid, pref uint32
		ok          bool
	}{
		{state.Addr{}, 0, 0, false},
		{state.Addr{ValidLft: 100, PreferredLft: 50}, 100, 50, true},
		{state.Addr{ValidLft: 100}, 100, 0, true},
		{state.Addr{PreferredLft: 50}, state.Forever, 50, true},
		{state.Addr{Flags: state.AddrDeprecated}, state.Forever, 0, true},
	} {
		v, p, ok := lifetimes(&c.a)
		if v != c.valid || p != c.pref || ok != c.ok {
			t.Errorf("lifetimes(%s) = %d, %d, %v; want %d, %d, %v", js(c.a), v, p, ok, c.valid, c.pref, c.ok)
		}
	}
}
