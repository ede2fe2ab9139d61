package kernel

// Tests that prove the firewall with real packets: a namespace A whose
// table tunroute writes, joined by veth pairs a<i>/b<i> to a namespace B
// that counts what arrives in its prerouting hook (nftables counters in a
// table of the test's own).

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nftPair is two namespaces joined by veth pairs: A's a<i> has 10.77.<i>.1/24
// and 2001:db8:77:<i>::1/64, B's b<i> the same addresses ending in 2.
type nftPair struct{ a, b string }

func newPair(t *testing.T, short string, links int) nftPair {
	t.Helper()
	p := nftPair{a: newNftNS(t, short+"a"), b: newNftNS(t, short+"b")}
	for _, ns := range []string{p.a, p.b} {
		sysctlIn(t, ns, "net.ipv6.conf.default.accept_dad", "0")
		sysctlIn(t, ns, "net.ipv4.conf.all.rp_filter", "0")
		sysctlIn(t, ns, "net.ipv4.conf.default.rp_filter", "0")
	}
	for i := 0; i < links; i++ {
		ipn(t, p.a, "link", "add", fmt.Sprintf("a%d", i), "type", "veth", "peer", "name", fmt.Sprintf("b%d", i), "netns", p.b)
		for _, end := range []struct {
			ns, dev string
			host    int
		}{{p.a, fmt.Sprintf("a%d", i), 1}, {p.b, fmt.Sprintf("b%d", i), 2}} {
			ipScript(t, end.ns, fmt.Sprintf(`
addr add 10.77.%[1]d.%[3]d/24 dev %[2]s
-6 addr add 2001:db8:77:%[1]d::%[3]d/64 dev %[2]s nodad
link set %[2]s up`, i, end.dev, end.host))
		}
	}
	return p
}

// countIn installs in ns a counter per match (in nft's words) on what
// arrives (prerouting, before anything else).
func countIn(t *testing.T, ns string, matches ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("table inet trcount {\n  chain pre {\n    type filter hook prerouting priority -400; policy accept;\n")
	for _, m := range matches {
		fmt.Fprintf(&b, "    %s counter\n", m)
	}
	b.WriteString("  }\n}\n")
	nftScript(t, ns, b.String())
}

// counts reads the counters countIn installed, in order.
func counts(t *testing.T, ns string) []uint64 {
	t.Helper()
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage
			}
		}
	}
	if err := json.Unmarshal([]byte(nftIn(t, ns, "-j", "list", "table", "inet", "trcount")), &doc); err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			if raw, ok := e["counter"]; ok {
				var c struct{ Packets uint64 }
				json.Unmarshal(raw, &c)
				out = append(out, c.Packets)
			}
		}
	}
	return out
}

// sock is a socket made inside a namespace; it keeps working there from
// any thread.
type sock struct {
	fd int
	v6 bool
}

// udpSocket opens a UDP socket in ns, owned by uid (the creating thread's
// fsuid) when uid >= 0, with the mark when mark != 0.
func udpSocket(t *testing.T, ns string, v6 bool, uid int, mark uint32) *sock {
	return socketIn(t, ns, v6, unix.SOCK_DGRAM, 0, uid, mark)
}

func socketIn(t *testing.T, ns string, v6 bool, typ, proto, uid int, mark uint32) *sock {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	af := unix.AF_INET
	if v6 {
		af = unix.AF_INET6
	}
	s := &sock{v6: v6}
	err = inNetns(h, func() error {
		if uid >= 0 {
			unix.Setfsuid(uid)
			defer unix.Setfsuid(0)
		}
		var err error
		s.fd, err = unix.Socket(af, typ|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	if mark != 0 {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func (s *sock) bind(t *testing.T, ap netip.AddrPort) {
	t.Helper()
	if err := unix.Bind(s.fd, sockaddr(ap)); err != nil {
		t.Fatalf("bind %s: %v", ap, err)
	}
}

// send sends n datagrams to dst and returns how many the kernel took
// (a packet dropped in the output hook fails with EPERM).
func (s *sock) send(dst netip.AddrPort, n int, payload []byte) int {
	ok := 0
	for i := 0; i < n; i++ {
		if unix.Sendto(s.fd, payload, 0, sockaddr(dst)) == nil {
			ok++
		}
	}
	return ok
}

var ap = netip.MustParseAddrPort

// settleCounts waits until the counters in ns stop changing.
func settleCounts(t *testing.T, ns string) []uint64 {
	t.Helper()
	prev := counts(t, ns)
	for i := 0; i < 20; i++ {
		time.Sleep(50 * time.Millisecond)
		cur := counts(t, ns)
		if fmt.Sprint(cur) == fmt.Sprint(prev) {
			return cur
		}
		prev = cur
	}
	return prev
}

// delta returns after - before, element by element.
func delta(before, after []uint64) []uint64 {
	out := make([]uint64, len(after))
	for i := range after {
		out[i] = after[i] - before[i]
	}
	return out
}

// TestFirewallMatchesTraffic proves each kind of match with packets: a
// drop rule with that match in A's output hook, then datagrams that match
// it (none may arrive in B) and datagrams that do not (all must).
func TestFirewallMatchesTraffic(t *testing.T) {
	needNft(t)
	p := newPair(t, "match", 3)
	ipn(t, p.b, "addr", "add", "10.77.0.3/24", "dev", "b0")
	ipn(t, p.b, "-6", "addr", "add", "2001:db8:77::3/64", "dev", "b0", "nodad")
	countIn(t, p.b,
		`iifname "b0" udp dport 7000`, `iifname "b1" udp dport 7000`, `iifname "b2" udp dport 7000`, // 0-2
		`ip daddr 10.77.0.2 udp dport 7001`, `ip daddr 10.77.0.3 udp dport 7001`, `ip daddr 10.77.1.2 udp dport 7001`, // 3-5
		`ip6 daddr 2001:db8:77::2 udp dport 7001`, `ip6 daddr 2001:db8:77::3 udp dport 7001`, `ip6 daddr 2001:db8:77:1::2 udp dport 7001`, // 6-8
		`udp dport 9005`, `udp dport 9500`, `udp dport 9011`, `udp dport 8999`, // 9-12
		`udp dport 7002`, `udp dport 7003`, `udp dport 7004`, // 13-15
		`icmpv6 type echo-request`, `icmpv6 type echo-reply`, // 16-17
	)
	h := openT(t, p.a)
	var prev *state.Firewall
	install := func(t *testing.T, rule state.FwRule) {
		t.Helper()
		fw := &state.Firewall{Chains: []state.Chain{{Name: "t", Type: "filter", Hook: "output", Policy: "accept",
			Rules: []state.FwRule{rule}}}}
		op := fwOp(state.Add, fw, nil)
		if prev != nil {
			op = fwOp(state.Replace, fw, prev)
		}
		if _, err := h.Execute([]state.Op{op}); err != nil {
			t.Fatal(err)
		}
		prev = fw
	}
	// expect sends n datagrams with each send and checks how many arrived
	// at each counter (the others must not change).
	type sent struct {
		s   *sock
		dst string
	}
	expect := func(t *testing.T, sends []sent, want map[int]uint64) {
		t.Helper()
		before := settleCounts(t, p.b)
		for _, x := range sends {
			x.s.send(ap(x.dst), 5, []byte("x"))
		}
		got := delta(before, settleCounts(t, p.b))
		for i, n := range got {
			if n != want[i] {
				t.Errorf("counter %d: %d packets arrived, want %d (all: %v)", i, n, want[i], got)
			}
		}
	}
	s4, s6 := udpSocket(t, p.a, false, -1, 0), udpSocket(t, p.a, true, -1, 0)
	drop := func(r state.FwRule) state.FwRule { r.Verdict = "drop"; r.Comment = "test"; return r }

	t.Run("oif set", func(t *testing.T) {
		install(t, drop(state.FwRule{OIF: []string{"a0", "a2"}}))
		expect(t, []sent{{s4, "10.77.0.2:7000"}, {s4, "10.77.1.2:7000"}, {s4, "10.77.2.2:7000"}}, map[int]uint64{1: 5})
	})
	t.Run("not oif set", func(t *testing.T) {
		install(t, drop(state.FwRule{NotOIF: []string{"lo", "a1"}}))
		expect(t, []sent{{s4, "10.77.0.2:7000"}, {s4, "10.77.1.2:7000"}, {s6, "[2001:db8:77:2::2]:7000"}}, map[int]uint64{1: 5})
	})
	t.Run("daddr set v4", func(t *testing.T) {
		install(t, drop(state.FwRule{Family: 4, Daddr: pfxs("10.77.0.2/32", "10.77.1.0/24")}))
		expect(t, []sent{{s4, "10.77.0.2:7001"}, {s4, "10.77.0.3:7001"}, {s4, "10.77.1.2:7001"},
			{s6, "[2001:db8:77::2]:7001"}}, map[int]uint64{4: 5, 6: 5})
	})
	t.Run("daddr set v6", func(t *testing.T) {
		install(t, drop(state.FwRule{Family: 6, Daddr: pfxs("2001:db8:77::2/128", "2001:db8:77:1::/64")}))
		expect(t, []sent{{s6, "[2001:db8:77::2]:7001"}, {s6, "[2001:db8:77::3]:7001"}, {s6, "[2001:db8:77:1::2]:7001"},
			{s4, "10.77.0.2:7001"}}, map[int]uint64{7: 5, 3: 5})
	})
	t.Run("not daddr set", func(t *testing.T) {
		install(t, drop(state.FwRule{Family: 4, NotDaddr: pfxs("10.77.0.3/32", "10.77.1.0/24")}))
		expect(t, []sent{{s4, "10.77.0.2:7001"}, {s4, "10.77.0.3:7001"}, {s4, "10.77.1.2:7001"}}, map[int]uint64{4: 5, 5: 5})
	})
	t.Run("dports range set", func(t *testing.T) {
		install(t, drop(state.FwRule{Proto: 17, DPorts: []state.PortRange{{Start: 9000, End: 9010}, {Start: 9500, End: 9500}}}))
		expect(t, []sent{{s4, "10.77.0.2:9005"}, {s6, "[2001:db8:77::2]:9500"}, {s4, "10.77.0.2:9011"}, {s6, "[2001:db8:77::2]:8999"}},
			map[int]uint64{11: 5, 12: 5})
	})
	t.Run("uid", func(t *testing.T) {
		install(t, drop(state.FwRule{UID: &state.UIDRange{Start: 1000, End: 1000}}))
		expect(t, []sent{{udpSocket(t, p.a, false, 1000, 0), "10.77.0.2:7002"}, {udpSocket(t, p.a, false, 1001, 0), "10.77.0.2:7003"},
			{s4, "10.77.0.2:7004"}}, map[int]uint64{14: 5, 15: 5})
	})
	t.Run("uid range", func(t *testing.T) {
		install(t, drop(state.FwRule{UID: &state.UIDRange{Start: 1000, End: 1999}}))
		expect(t, []sent{{udpSocket(t, p.a, true, 1500, 0), "[2001:db8:77::2]:7002"}, {udpSocket(t, p.a, false, 2000, 0), "10.77.0.2:7003"},
			{udpSocket(t, p.a, false, 999, 0), "10.77.0.2:7004"}}, map[int]uint64{14: 5, 15: 5})
	})
	t.Run("mark", func(t *testing.T) {
		install(t, drop(state.FwRule{Mark: 0x300, MarkMask: 0xf00}))
		expect(t, []sent{{udpSocket(t, p.a, false, -1, 0x300), "10.77.0.2:7002"}, {udpSocket(t, p.a, false, -1, 0x10301), "10.77.0.2:7002"},
			{udpSocket(t, p.a, false, -1, 0x400), "10.77.0.2:7003"}, {s4, "10.77.0.2:7004"}}, map[int]uint64{14: 5, 15: 5})
	})
	t.Run("icmpv6 type", func(t *testing.T) {
		install(t, drop(state.FwRule{Family: 6, Proto: 58, ICMPv6Types: []uint8{128}}))
		raw := socketIn(t, p.a, true, unix.SOCK_RAW, unix.IPPROTO_ICMPV6, -1, 0)
		echo := func(typ byte) []byte { return []byte{typ, 0, 0, 0, 0, 1, 0, 1} } // type, code, checksum (the kernel's), id, seq
		before := settleCounts(t, p.b)
		for _, typ := range []byte{128, 129} {
			for i := 0; i < 5; i++ {
				unix.Sendto(raw.fd, echo(typ), 0, sockaddr(ap("[2001:db8:77::2]:0")))
			}
		}
		got := delta(before, settleCounts(t, p.b))
		if got[16] != 0 || got[17] != 5 {
			t.Errorf("echo requests arrived: %d (want 0), echo replies: %d (want 5)", got[16], got[17])
		}
	})
}

// TestFirewallSetMarkReroutes: a mark set in a route chain changes the
// route through an `ip rule fwmark`; the mark's other bits stay, the bits
// under its mask are replaced.
func TestFirewallSetMarkReroutes(t *testing.T) {
	needNft(t)
	p := newPair(t, "setmark", 3)
	ipScript(t, p.a, `
rule add pref 90 fwmark 0x10300/0x10f00 lookup 101
rule add pref 100 fwmark 0x300/0xf00 lookup 100
route add 10.77.9.0/24 via 10.77.1.2 dev a1 table 100
route add 10.77.9.0/24 via 10.77.2.2 dev a2 table 101
route add 10.77.9.0/24 via 10.77.0.2 dev a0`)
	countIn(t, p.b, `iifname "b0" udp dport 5555`, `iifname "b1" udp dport 5555`, `iifname "b2" udp dport 5555`,
		`iifname "b0" udp dport 5556`, `iifname "b1" udp dport 5556`, `iifname "b2" udp dport 5556`)
	h := openT(t, p.a)
	plain, other, under := udpSocket(t, p.a, false, -1, 0), udpSocket(t, p.a, false, -1, 0x10000), udpSocket(t, p.a, false, -1, 0x500)
	check := func(what string, s *sock, dst string, want string) {
		t.Helper()
		before := settleCounts(t, p.b)
		s.send(ap(dst), 3, []byte("x"))
		if got := fmt.Sprint(delta(before, settleCounts(t, p.b))); got != want {
			t.Errorf("%s: arrived %s, want %s", what, got, want)
		}
	}
	check("no firewall", plain, "10.77.9.9:5555", "[3 0 0 0 0 0]")
	fw := &state.Firewall{Chains: []state.Chain{{Name: "mark", Type: "route", Hook: "output", Priority: -150, Policy: "accept",
		Rules: []state.FwRule{{Comment: "select", Family: 4, Proto: 17, DPorts: ports1(5555), SetMark: 0x300, SetMarkMask: 0xf00}}}}}
	if _, err := h.Execute([]state.Op{fwOp(state.Add, fw, nil)}); err != nil {
		t.Fatal(err)
	}
	check("marked", plain, "10.77.9.9:5555", "[0 3 0 0 0 0]")
	check("not selected", plain, "10.77.9.9:5556", "[0 0 0 3 0 0]")
	check("marked, other bits kept", other, "10.77.9.9:5555", "[0 0 3 0 0 0]")
	check("not selected, other bits", other, "10.77.9.9:5556", "[0 0 0 3 0 0]")
	check("bits under the mask replaced", under, "10.77.9.9:5555", "[0 3 0 0 0 0]")
}

// TestFirewallMasquerade: what the peer sees as source before and after a
// masquerade rule like compile's select_nat (an outgoing interface and a
// mark).
func TestFirewallMasquerade(t *testing.T) {
	needNft(t)
	p := newPair(t, "masq", 2)
	countIn(t, p.b, `ip saddr 10.77.0.1 udp dport 7777`, `ip saddr 10.77.1.1 udp dport 7777`)
	h := openT(t, p.a)
	from := func(mark uint32) *sock {
		s := udpSocket(t, p.a, false, -1, mark)
		s.bind(t, ap("10.77.0.1:0")) // a source that is not a1's
		return s
	}
	check := func(what string, s *sock, want string) {
		t.Helper()
		before := settleCounts(t, p.b)
		s.send(ap("10.77.1.2:7777"), 4, []byte("x"))
		if got := fmt.Sprint(delta(before, settleCounts(t, p.b))); got != want {
			t.Errorf("%s: B saw sources %s (from 10.77.0.1, from 10.77.1.1), want %s", what, got, want)
		}
	}
	check("no firewall", from(0x300), "[4 0]")
	fw := &state.Firewall{Chains: []state.Chain{{Name: "nat", Type: "nat", Hook: "postrouting", Priority: 100, Policy: "accept",
		Rules: []state.FwRule{{Comment: "select", Family: 4, OIF: []string{"a1"}, Mark: 0x300, MarkMask: 0xf00, Masquerade: true}}}}}
	if _, err := h.Execute([]state.Op{fwOp(state.Add, fw, nil)}); err != nil {
		t.Fatal(err)
	}
	// New sockets: a flow keeps the NAT decision of its first packet.
	check("marked", from(0x300), "[0 4]")
	check("not marked", from(0), "[4 0]")
}

// TestFirewallCgroupTraffic: a `socket cgroupv2` match drops what a
// process in the cgroup sends, and nothing else.
func TestFirewallCgroupTraffic(t *testing.T) {
	needNft(t)
	root, err := cgroupRoot()
	if err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash (/dev/udp)")
	}
	parent := fmt.Sprintf("tr-nft-cg-%d", os.Getpid())
	path := parent + "/app"
	if err := os.MkdirAll(filepath.Join(root, path), 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join(root, path))
		os.Remove(filepath.Join(root, parent))
	})
	p := newPair(t, "cgroup", 1)
	countIn(t, p.b, "udp dport 7002", "udp dport 7003")
	h := openT(t, p.a)
	fw := &state.Firewall{Chains: []state.Chain{{Name: "t", Type: "filter", Hook: "output", Policy: "accept",
		Rules: []state.FwRule{{Comment: "app", Cgroup: path, Counter: true, Verdict: "drop"}}}}}
	if _, err := h.Execute([]state.Op{fwOp(state.Add, fw, nil)}); err != nil {
		t.Fatal(err)
	}
	// bash moves itself into the cgroup (or not), then sends one datagram
	// from A (ip netns exec mounts its own /sys: join first).
	send := func(join bool, port int) {
		t.Helper()
		inner := fmt.Sprintf("cat /proc/self/cgroup; echo x > /dev/udp/10.77.0.2/%d", port)
		script := fmt.Sprintf("exec ip netns exec %s bash -c '%s'", p.a, inner)
		if join {
			script = fmt.Sprintf("echo $$ > %s/cgroup.procs && %s", filepath.Join(root, path), script)
		}
		out, _ := exec.Command("bash", "-c", script).CombinedOutput()
		if in := strings.Contains(string(out), "0::/"+path+"\n"); in != join {
			t.Fatalf("sender in the cgroup: %v, want %v: %s", in, join, out)
		}
	}
	before := settleCounts(t, p.b)
	for i := 0; i < 3; i++ {
		send(true, 7002)
		send(false, 7003)
	}
	if got := fmt.Sprint(delta(before, settleCounts(t, p.b))); got != "[0 3]" {
		t.Errorf("arrived %s, want [0 3]", got)
	}
	s, err := h.Observe()
	if err != nil || !s.Firewall.Equal(fw) || s.Firewall.Chains[0].Rules[0].Packets != 3 {
		t.Errorf("Observe: %v %v (%d packets)", s.Firewall.Lines(), err, s.Firewall.Chains[0].Rules[0].Packets)
	}
}
