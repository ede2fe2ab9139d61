package kernel

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// needNft skips a test that needs root and nft, the oracle.
func needNft(t testing.TB) {
	t.Helper()
	testns.Need(t, "ip", "nft")
}

// newNftNS creates the namespace tr-nft-<short>-<pid> with lo up and
// deletes it when the test ends, whatever the outcome.
func newNftNS(t testing.TB, short string) string {
	t.Helper()
	return testns.NewNS(t, fmt.Sprintf("tr-nft-%s-%d", short, os.Getpid()))
}

// firewallNS skips the test without root and nft, else makes a namespace
// as newNftNS does and opens a handle in it. The cgroups vpnUpFirewall and
// everyFieldFirewall name exist (fakeCgroups).
func firewallNS(t testing.TB, short string) (string, *Handle) {
	t.Helper()
	needNft(t)
	fakeCgroups(t, "system.slice/backup.service", "tr.slice/app.service")
	ns := newNftNS(t, short)
	return ns, openT(t, ns)
}

// nftIn runs nft inside ns and returns its standard output (nft warns
// on standard error, e.g. of a rule without statements).
func nftIn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nft %s in %s: %v: %s%s", strings.Join(args, " "), ns, err, out, stderr.String())
	}
	return string(out)
}

// nftScript loads a ruleset file into ns with nft -f.
func nftScript(t testing.TB, ns, script string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	nftIn(t, ns, "-f", f)
}

// fakeCgroups points CgroupRoot at a directory holding the given paths, so
// that rules naming them resolve (to the directories' inode numbers).
func fakeCgroups(t testing.TB, paths ...string) {
	t.Helper()
	root := t.TempDir()
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := CgroupRoot
	CgroupRoot = root
	t.Cleanup(func() { CgroupRoot = old })
}

func fwOp(a state.Action, fw, prev *state.Firewall) state.Op {
	return state.Op{Action: a, Firewall: fw, PrevFirewall: prev}
}

func ports1(p uint16) []state.PortRange { return []state.PortRange{{Start: p, End: p}} }

func pfxs(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

// vpnUpFirewall is the table internal/compile's TestVPNUp compiles (the
// lab client with its VPN up); vpnUpText is how that test prints it.
func vpnUpFirewall() *state.Firewall {
	dns := func(fam int, proto uint8, notDaddr []netip.Prefix) state.FwRule {
		return state.FwRule{Comment: "DNS only to the declared resolvers", Family: fam, Proto: proto,
			DPorts: ports1(53), NotDaddr: notDaddr, Counter: true, Verdict: "drop"}
	}
	dnsRules := []state.FwRule{dns(4, 17, pfxs("10.30.0.1/32")), dns(4, 6, pfxs("10.30.0.1/32")), dns(6, 17, nil), dns(6, 6, nil)}
	tunnel := state.FwRule{Comment: "in a tunnel", OIF: []string{"wg0"}, Verdict: "accept"}
	clear := []state.FwRule{
		{Comment: "allowed in clear", Family: 4, Daddr: pfxs("10.1.0.0/24"), Verdict: "accept"},
		{Comment: "VPN server", Family: 4, Daddr: pfxs("198.51.100.2/32"), Proto: 17, DPorts: ports1(1194), Verdict: "accept"},
	}
	drop := state.FwRule{Comment: "kill switch: not in a tunnel, not allowed in clear", Counter: true, Verdict: "drop"}
	var out []state.FwRule
	out = append(out, state.FwRule{Comment: "loopback", OIF: []string{"lo"}, Verdict: "accept"})
	out = append(out, dnsRules...)
	out = append(out, tunnel)
	out = append(out, clear...)
	out = append(out,
		state.FwRule{Comment: "DHCP", Family: 4, Proto: 17, SPorts: ports1(68), DPorts: ports1(67), Verdict: "accept"},
		state.FwRule{Comment: "DHCPv6", Family: 6, Proto: 17, SPorts: ports1(546), DPorts: ports1(547), Verdict: "accept"},
		state.FwRule{Comment: "IPv6 neighbour discovery", Family: 6, Proto: 58, ICMPv6Types: []uint8{133, 135, 136, 143}, Verdict: "accept"},
		drop)
	var fwd []state.FwRule
	fwd = append(fwd, dnsRules...)
	fwd = append(fwd, tunnel)
	fwd = append(fwd, clear...)
	fwd = append(fwd, drop)
	return &state.Firewall{Chains: []state.Chain{
		{Name: "select_output", Type: "route", Hook: "output", Priority: -150, Policy: "accept", Rules: []state.FwRule{{
			Comment: "select: cgroup system.slice/backup.service via inside", Family: 4,
			Cgroup: "system.slice/backup.service", SetMark: 0x03000000, SetMarkMask: 0x0f000000}}},
		{Name: "select_nat", Type: "nat", Hook: "postrouting", Priority: 100, Policy: "accept", Rules: []state.FwRule{{
			Comment: "select: source of re-routed cgroup system.slice/backup.service traffic", Family: 4,
			OIF: []string{"wg0"}, Mark: 0x03000000, MarkMask: 0x0f000000, Masquerade: true}}},
		{Name: "killswitch_output", Type: "filter", Hook: "output", Priority: 0, Policy: "accept", Rules: out},
		{Name: "killswitch_forward", Type: "filter", Hook: "forward", Priority: 0, Policy: "accept", Rules: fwd},
	}}
}

const vpnUpText = `table inet tunroute {
  chain select_output {
    type route hook output priority -150; policy accept;
    meta nfproto ipv4 socket cgroupv2 level 2 "system.slice/backup.service" meta mark set meta mark & 0xf0ffffff | 0x03000000 "select: cgroup system.slice/backup.service via inside"
  }
  chain select_nat {
    type nat hook postrouting priority 100; policy accept;
    meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x03000000 masquerade "select: source of re-routed cgroup system.slice/backup.service traffic"
  }
  chain killswitch_output {
    type filter hook output priority 0; policy accept;
    oifname "lo" accept "loopback"
    meta nfproto ipv4 ip daddr != 10.30.0.1 meta l4proto udp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv4 ip daddr != 10.30.0.1 meta l4proto tcp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv6 meta l4proto udp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv6 meta l4proto tcp th dport 53 counter drop "DNS only to the declared resolvers"
    oifname "wg0" accept "in a tunnel"
    meta nfproto ipv4 ip daddr 10.1.0.0/24 accept "allowed in clear"
    meta nfproto ipv4 ip daddr 198.51.100.2 meta l4proto udp th dport 1194 accept "VPN server"
    meta nfproto ipv4 meta l4proto udp th sport 68 th dport 67 accept "DHCP"
    meta nfproto ipv6 meta l4proto udp th sport 546 th dport 547 accept "DHCPv6"
    meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type { 133, 135, 136, 143 } accept "IPv6 neighbour discovery"
    counter drop "kill switch: not in a tunnel, not allowed in clear"
  }
  chain killswitch_forward {
    type filter hook forward priority 0; policy accept;
    meta nfproto ipv4 ip daddr != 10.30.0.1 meta l4proto udp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv4 ip daddr != 10.30.0.1 meta l4proto tcp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv6 meta l4proto udp th dport 53 counter drop "DNS only to the declared resolvers"
    meta nfproto ipv6 meta l4proto tcp th dport 53 counter drop "DNS only to the declared resolvers"
    oifname "wg0" accept "in a tunnel"
    meta nfproto ipv4 ip daddr 10.1.0.0/24 accept "allowed in clear"
    meta nfproto ipv4 ip daddr 198.51.100.2 meta l4proto udp th dport 1194 accept "VPN server"
    counter drop "kill switch: not in a tunnel, not allowed in clear"
  }
}`

// everyFieldFirewall uses every FwRule field, each form of every match
// (one value, a range, a set; negated), every verdict and a rule whose
// record does not fit in the rule's userdata. Its cgroups are
// tr.slice/app.service and tr.slice.
func everyFieldFirewall() *state.Firewall {
	var many []netip.Prefix // more than the 256 bytes of userdata can list
	for i := 19; i >= 0; i-- {
		many = append(many, netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/48", 0x100+i*3)))
	}
	return &state.Firewall{Chains: []state.Chain{
		{Name: "pre", Type: "filter", Hook: "prerouting", Priority: -300, Policy: "accept", Rules: []state.FwRule{
			{Comment: "iif set, v6 source set, sport range", Family: 6, IIF: []string{"eth1", "eth0"}, Proto: 6,
				Saddr: pfxs("2001:db8:2::/64", "2001:db8:1::1/128"), SPorts: []state.PortRange{{Start: 1000, End: 2000}}, Counter: true, Verdict: "accept"},
			{Comment: "iif one, ct state", IIF: []string{"eth0"}, CtState: []string{"established", "related"}, Verdict: "accept"},
			{Comment: "invalid", CtState: []string{"invalid"}, Counter: true, Verdict: "drop"},
		}},
		{Name: "mark", Type: "route", Hook: "output", Priority: -150, Policy: "accept", Rules: []state.FwRule{
			{Comment: "cgroup level 2", Family: 4, Cgroup: "tr.slice/app.service", Proto: 17, DPorts: ports1(53),
				Daddr: pfxs("10.9.0.0/16"), SetMark: 0x00000200, SetMarkMask: 0x00000f00},
			{Comment: "cgroup level 1, mark bits outside the mask", Family: 6, Cgroup: "tr.slice", SetMark: 0x10000001, SetMarkMask: 0xf0000000},
		}},
		{Name: "out", Type: "filter", Hook: "output", Priority: 10, Policy: "accept", Rules: []state.FwRule{
			{Comment: "oif set", OIF: []string{"wg1", "wg0", "tun0"}, Verdict: "accept"},
			{Comment: "oif wildcard", OIF: []string{"tun*"}, Verdict: "accept"},
			{Comment: "not oif one", NotOIF: []string{"lo"}, Family: 4, Daddr: pfxs("127.0.0.0/8"), Verdict: "drop"},
			{Comment: "not oif set, v4 sets, dport ranges", Family: 4, NotOIF: []string{"lo", "wg0"}, Proto: 17,
				Daddr: pfxs("10.1.0.0/24", "192.0.2.7/32", "10.1.1.0/24", "10.0.0.0/9"), NotDaddr: pfxs("10.1.0.1/32", "10.1.0.2/32"),
				DPorts: []state.PortRange{{Start: 9000, End: 9010}, {Start: 22, End: 22}, {Start: 9500, End: 9500}}, Counter: true, Verdict: "drop"},
			{Comment: "v6 daddr one non-byte-aligned prefix", Family: 6, Daddr: pfxs("2001:db8:0:40::/58"), Verdict: "accept"},
			{Comment: "v6 not daddr set", Family: 6, NotDaddr: pfxs("2001:db8::/32", "fd00::/8"), Proto: 58, ICMPv6Types: []uint8{128}, Verdict: "reject"},
			{Comment: "uid one", UID: &state.UIDRange{Start: 1000, End: 1000}, Verdict: "accept"},
			{Comment: "uid range, mark", UID: &state.UIDRange{Start: 2000, End: 2999}, Mark: 0x100, MarkMask: 0xff00, Counter: true, Verdict: "reject"},
			{Comment: "v4 reject", Family: 4, Proto: 6, DPorts: ports1(25), Verdict: "reject"},
			{Comment: "icmpv6 set", Family: 6, Proto: 58, ICMPv6Types: []uint8{136, 135}, Verdict: "accept"},
			{Comment: "sport set", Proto: 17, SPorts: []state.PortRange{{Start: 5000, End: 5001}, {Start: 68, End: 68}}, Verdict: "accept"},
			{Comment: "a long list that the record leaves out, given in no particular order", Family: 6, Daddr: many, Counter: true, Verdict: "drop"},
			{Comment: "no matches: counts everything", Counter: true},
			{},
		}},
		{Name: "nat", Type: "nat", Hook: "postrouting", Priority: 100, Policy: "accept", Rules: []state.FwRule{
			{Comment: "masquerade", Family: 4, OIF: []string{"eth0"}, Mark: 0x200, MarkMask: 0xf00, Masquerade: true},
		}},
		{Name: "in", Type: "filter", Hook: "input", Priority: 0, Policy: "drop", Rules: []state.FwRule{
			{Comment: "policy drop chain", IIF: []string{"lo"}, Verdict: "accept"},
		}},
	}}
}
