package nfteval

import (
	"net/netip"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

func pfx(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }

// fw has two output base chains: a route chain that marks a cgroup's
// packets (priority -150) and a filter chain (0) with a kill switch.
func fw() *state.Firewall {
	return &state.Firewall{Chains: []state.Chain{
		{Name: "killswitch_output", Type: "filter", Hook: "output", Priority: 0, Policy: "accept", Rules: []state.FwRule{
			{Comment: "loopback", OIF: []string{"lo"}, Verdict: "accept"},
			{Comment: "DNS", Family: 4, Proto: 17, DPorts: []state.PortRange{{Start: 53, End: 53}}, NotDaddr: pfx("10.30.0.1/32"), Verdict: "drop"},
			{Comment: "in a tunnel", OIF: []string{"wg0"}, Verdict: "accept"},
			{Comment: "allowed in clear", Family: 4, Daddr: pfx("10.1.0.0/24"), Verdict: "accept"},
			{Comment: "nd", Family: 6, Proto: 58, ICMPv6Types: []uint8{135, 136}, Verdict: "accept"},
			{Comment: "ssh server", Family: 4, Saddr: pfx("10.1.0.2/32"), Proto: 6, SPorts: []state.PortRange{{Start: 22, End: 22}}, Verdict: "accept"},
			{Comment: "uid", UID: &state.UIDRange{Start: 1000, End: 1000}, Verdict: "accept"},
			{Comment: "replies", CtState: []string{"established", "related"}, Verdict: "accept"},
			{Comment: "kill switch", Counter: true, Verdict: "drop"},
		}},
		{Name: "select_output", Type: "route", Hook: "output", Priority: -150, Policy: "accept", Rules: []state.FwRule{
			{Cgroup: "system.slice/backup.service", SetMark: 0x01000000, SetMarkMask: 0x0f000000},
		}},
	}}
}

func TestHook(t *testing.T) {
	a := netip.MustParseAddr
	base := Packet{Family: 4, OIF: "eth0", Src: a("10.1.0.2"), Dst: a("203.0.113.7"), Proto: 1, Socket: true, UID: 0}
	for _, tc := range []struct {
		name   string
		edit   func(p *Packet)
		drop   bool
		reason string
	}{
		{"clear is dropped", func(p *Packet) {}, true, "kill switch"},
		{"tunnel", func(p *Packet) { p.OIF = "wg0" }, false, ""},
		{"loopback", func(p *Packet) { p.OIF = "lo" }, false, ""},
		{"DNS elsewhere, even in the tunnel", func(p *Packet) { p.OIF, p.Proto, p.DPort = "wg0", 17, 53 }, true, "DNS"},
		{"DNS to the resolver", func(p *Packet) { p.OIF, p.Proto, p.DPort, p.Dst = "wg0", 17, 53, a("10.30.0.1") }, false, ""},
		{"the LAN", func(p *Packet) { p.Dst = a("10.1.0.9") }, false, ""},
		{"ssh server's answers", func(p *Packet) { p.Proto, p.SPort = 6, 22 }, false, ""},
		{"sport 22 of UDP is not ssh", func(p *Packet) { p.Proto, p.SPort = 17, 22 }, true, "kill switch"},
		{"ports of ICMP never match", func(p *Packet) { p.Proto, p.SPort = 1, 22 }, true, "kill switch"},
		{"uid 1000", func(p *Packet) { p.UID = 1000 }, false, ""},
		{"forwarded has no uid", func(p *Packet) { p.UID, p.Socket = 1000, false }, true, "kill switch"},
		{"neighbour solicitation", func(p *Packet) {
			p.Family, p.Src, p.Dst, p.Proto, p.ICMPType = 6, a("2001:db8::2"), a("ff02::1:ff00:1"), 58, 135
		}, false, ""},
		{"echo is not ND", func(p *Packet) {
			p.Family, p.Src, p.Dst, p.Proto, p.ICMPType = 6, a("2001:db8::2"), a("2001:db8::9"), 58, 128
		}, true, "kill switch"},
	} {
		p := base
		tc.edit(&p)
		v := Hook(fw(), "output", p, "filter")
		if v.Drop != tc.drop || tc.drop && v.Reason() != tc.reason {
			t.Errorf("%s: drop %v by %q", tc.name, v.Drop, v.Reason())
		}
	}
}

func TestMarkAndChainOrder(t *testing.T) {
	p := Packet{Family: 4, OIF: "eth0", Dst: netip.MustParseAddr("203.0.113.7"), Proto: 17, Socket: true,
		Cgroup: "system.slice/backup.service/sub", Mark: 0xca6c}
	v := Hook(fw(), "output", p, "route")
	if v.Mark != 0x0100ca6c {
		t.Errorf("mark 0x%x, want tunroute's bits set and wg-quick's kept", v.Mark)
	}
	p.Cgroup = "system.slice/backup.serviceX"
	if v := Hook(fw(), "output", p, "route"); v.Mark != 0xca6c {
		t.Errorf("a sibling cgroup was marked: 0x%x", v.Mark)
	}
	// Both chains, route first: an accept in one chain does not end the hook.
	chains := Chains(fw(), "output")
	if len(chains) != 2 || chains[0].Name != "select_output" {
		t.Errorf("order: %v", chains)
	}
	p.OIF, p.Cgroup = "lo", ""
	if v := Hook(fw(), "output", p); v.Drop || len(v.Accepted) != 1 {
		t.Errorf("loopback: %+v", v)
	}
}

func TestPolicyDrop(t *testing.T) {
	f := &state.Firewall{Chains: []state.Chain{{Name: "in", Type: "filter", Hook: "input", Policy: "drop",
		Rules: []state.FwRule{{IIF: []string{"pipe0"}, Verdict: "accept"}}}}}
	if v := Hook(f, "input", Packet{Family: 4, IIF: "eth0"}); !v.Drop || v.Reason() != "policy" {
		t.Errorf("policy drop: %+v", v)
	}
	if v := Hook(f, "input", Packet{Family: 4, IIF: "pipe0"}); v.Drop {
		t.Errorf("accepted: %+v", v)
	}
	if v := Hook(nil, "output", Packet{Family: 4}); v.Drop {
		t.Errorf("no table: %+v", v)
	}
}
