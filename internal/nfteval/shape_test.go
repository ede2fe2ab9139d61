package nfteval

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// TestEveryFieldHandled fails when state.FwRule gains a field that the
// evaluator does not know: a match it ignored would make every packet
// match it (a drop rule dropping too much, an accept letting through).
func TestEveryFieldHandled(t *testing.T) {
	rt := reflect.TypeOf(state.FwRule{})
	for i := range rt.NumField() {
		if f := rt.Field(i); !slices.Contains(Handled, f.Name) {
			t.Errorf("state.FwRule.%s is not evaluated by nfteval: add it to Matches (or runChain) and to Handled", f.Name)
		}
	}
	for _, n := range Handled {
		if _, ok := rt.FieldByName(n); !ok {
			t.Errorf("Handled names %s, which state.FwRule no longer has", n)
		}
	}
}

// TestShape covers the matches of the kill switch's packet shape: the
// hop limit of neighbour discovery and MLD, a source on the outgoing
// device, IPv4 options, IPv6 routing headers, forwarded packets, and
// the WireGuard guard's input devices.
func TestShape(t *testing.T) {
	a := netip.MustParseAddr
	v6 := Packet{Family: 6, OIF: "eth0", Src: a("2001:db8:1::2"), Dst: a("ff02::1:ff00:1"), Proto: 58,
		ICMPType: 135, Socket: true, HopLimit: 255, SrcOnOIF: true}
	v4 := Packet{Family: 4, OIF: "eth0", Src: a("10.1.0.2"), Dst: a("10.1.0.1"), Proto: 17, Socket: true}
	fwd := Packet{Family: 4, IIF: "br0", OIF: "eth0", Src: a("10.9.0.2"), Dst: a("10.1.0.1"), Proto: 17}
	for _, tc := range []struct {
		name string
		r    state.FwRule
		p    Packet
		edit func(p *Packet)
		want bool
	}{
		{"hop limit 255", state.FwRule{Family: 6, HopLimit: 255}, v6, nil, true},
		{"hop limit 64 is not 255", state.FwRule{Family: 6, HopLimit: 255}, v6, func(p *Packet) { p.HopLimit = 64 }, false},
		{"hop limit is IPv6's", state.FwRule{HopLimit: 64}, v4, func(p *Packet) { p.HopLimit = 64 }, false},
		{"source on the device", state.FwRule{SaddrLocalOIF: true}, v6, nil, true},
		{"source not on the device", state.FwRule{SaddrLocalOIF: true}, v6, func(p *Packet) { p.SrcOnOIF = false }, false},
		{"no output device yet", state.FwRule{SaddrLocalOIF: true}, v6, func(p *Packet) { p.OIF = "" }, false},
		{"IPv4 options", state.FwRule{Family: 4, IPOptions: true}, v4, func(p *Packet) { p.IPOptions = true }, true},
		{"IPv4 without options", state.FwRule{Family: 4, IPOptions: true}, v4, nil, false},
		{"routing header", state.FwRule{Family: 6, RoutingHeader: true}, v6, func(p *Packet) { p.RoutingHeader = true }, true},
		{"no routing header", state.FwRule{Family: 6, RoutingHeader: true}, v6, nil, false},
		{"routing header is IPv6's", state.FwRule{RoutingHeader: true}, v4, func(p *Packet) { p.RoutingHeader = true }, false},
		{"forwarded", state.FwRule{Forwarded: true}, fwd, nil, true},
		{"sent by this host", state.FwRule{Forwarded: true}, v4, nil, false},
		{"guard: from another device", state.FwRule{NotIIF: []string{"wg0", "lo"}}, fwd, nil, true},
		{"guard: from the tunnel", state.FwRule{NotIIF: []string{"wg0", "lo"}}, fwd, func(p *Packet) { p.IIF = "wg0" }, false},
		{"guard: from this host to itself", state.FwRule{NotIIF: []string{"wg0", "lo"}}, fwd, func(p *Packet) { p.IIF = "lo" }, false},
		{"no input device is not in the set", state.FwRule{NotIIF: []string{"wg0", "lo"}}, v4, nil, true},
	} {
		p := tc.p
		if tc.edit != nil {
			tc.edit(&p)
		}
		if got := Matches(&tc.r, &p); got != tc.want {
			t.Errorf("%s: %s matches %+v: %v, want %v", tc.name, tc.r.String(), p, got, tc.want)
		}
	}
}

// TestKillSwitchDropsSourceRoutes runs the kill switch's postrouting
// order: a source-routed packet to an allowed LAN address is dropped,
// the same packet without options is accepted.
func TestKillSwitchDropsSourceRoutes(t *testing.T) {
	fw := &state.Firewall{Chains: []state.Chain{{Name: "killswitch_postrouting", Type: "filter", Hook: "postrouting", Policy: "accept",
		Rules: []state.FwRule{
			{Comment: "forwarded", Forwarded: true, Verdict: "accept"},
			{Comment: "IPv4 options", Family: 4, IPOptions: true, NotDaddr: pfx("224.0.0.0/4"), Verdict: "drop"},
			{Comment: "allowed in clear", Family: 4, Daddr: pfx("10.1.0.0/24"), Verdict: "accept"},
			{Comment: "kill switch", Verdict: "drop"},
		}}}}
	p := Packet{Family: 4, OIF: "eth0", Src: netip.MustParseAddr("10.1.0.2"), Dst: netip.MustParseAddr("10.1.0.1"), Proto: 1, Socket: true}
	if v := Hook(fw, "postrouting", p); v.Drop {
		t.Errorf("plain packet to the LAN: dropped by %s", v.Reason())
	}
	p.IPOptions = true
	if v := Hook(fw, "postrouting", p); !v.Drop || v.Reason() != "IPv4 options" {
		t.Errorf("source-routed packet to the LAN: drop %v by %s, want dropped by IPv4 options", v.Drop, v.Reason())
	}
	p.IIF, p.Socket = "br0", false
	if v := Hook(fw, "postrouting", p); v.Drop {
		t.Errorf("forwarded: dropped by %s, want accepted in postrouting (the forward chain decides)", v.Reason())
	}
}
