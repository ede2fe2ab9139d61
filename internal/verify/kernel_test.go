package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/kerneltest"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestKernelDifferential replays random packets of every class check
// computes against the kernel, in namespaces named tr-ck-*: for each
// config and each state of its VPNs, the config is applied for real
// (internal/kernel) to a namespace like the lab client, and packets drawn
// at random inside random classes (not only the classes' examples) must
// have the fate of their class. The kernel decides the route (`ip route
// get`, through ip -batch); the firewall verdict comes from real packets
// counted by the kernel's nftables for what this test can send (root,
// UDP and ICMP, sent by this host), from internal/nfteval otherwise.
// Every counterexample of the seeded bugs is replayed the same way.
// TUNROUTE_CHECK_PACKETS (default 10000) sets the number of packets.
func TestKernelDifferential(t *testing.T) {
	testns.Need(t, "ip", "nft")
	total := 10000
	if v, err := strconv.Atoi(os.Getenv("TUNROUTE_CHECK_PACKETS")); err == nil && v > 0 {
		total = v
	}
	type tcase struct {
		name, yaml string
		vpn        bool // a VPN "work" on tun0: checked up and down
		asserts    string
		// foreign are ip commands run after tunroute's apply: another
		// tool's rules and routes, which check must model as well.
		foreign []string
	}
	cases := []tcase{
		{"full-tunnel-lan", readExample(t, "full-tunnel-lan.yaml"), false, "", nil},
		{"telnet-ssh", readExample(t, "telnet-ssh-selectors.yaml"), false, "", nil},
		{"dual-identity", readExample(t, "dual-identity.yaml"), false, "", nil},
		{"blackhole", readExample(t, "blackhole-and-tables.yaml"), false, "", nil},
		{"openvpn", readExample(t, "openvpn-route-noexec.yaml"), true, "", nil},
		{"allow-too-wide", openvpnBase + "redirect: {via: inside}\nkillswitch:\n  allow: [{to: 0.0.0.0/0}]\n", true, "", nil},
		{"uid-around", openvpnBase + "redirect: {via: inside}\nselect:\n  - {uid: 1001, via: outside}\nkillswitch: {}\n", true,
			"assert:\n  - {uid: 1001, only_via: [inside]}\n", nil},
		{"fallback-clear", openvpnBase + "routes:\n  - {to: 10.20.0.0/16, via: inside}\n", true,
			"assert:\n  - {to: 10.20.0.0/16, only_via: [inside]}\n", nil},
		{"foreign-rules", readExample(t, "full-tunnel-lan.yaml"), false, "", []string{
			"route add default dev wg0 table 100", "route add blackhole default table 101",
			"rule add pref 100 to 198.51.100.0/24 lookup 100",
			"rule add pref 101 uidrange 2000-2999 lookup 101",
			"rule add pref 102 fwmark 0x7/0xff lookup 101",
			"rule add pref 103 to 203.0.113.0/24 lookup 102",
			"rule add pref 104 to 203.0.113.0/25 blackhole",
			"rule add pref 105 to 192.0.2.0/24 ipproto udp dport 53 lookup 100",
			"rule add pref 106 not from 10.1.0.2 to 10.99.0.0/16 lookup 101",
			"exec sysctl -qw net.ipv4.conf.all.rp_filter=1",
		}},
	}
	type run struct {
		c  tcase
		up bool
	}
	var runs []run
	// The counterexamples check finds offline (on the lab client
	// fixture, in every state) are replayed in the state they break.
	replay := map[string][]sample{}
	for _, c := range cases {
		if !c.vpn {
			continue
		}
		obs, fs := workFacts()
		rep := check(t, c.yaml+c.asserts, obs, fs)
		for _, r := range rep.Results {
			for _, v := range r.Violations {
				k := fmt.Sprintf("%s/%v", c.name, v.Scenario == "work up")
				replay[k] = append(replay[k], sample{v.Packet, v.FateOf(), true})
				t.Logf("%s: counterexample of %q (%s) to replay: %s", c.name, r.Name, v.Scenario, v.Example)
			}
		}
	}
	for _, c := range cases {
		runs = append(runs, run{c, true})
		if c.vpn {
			runs = append(runs, run{c, false})
		}
	}
	per := total / len(runs)
	rng := rand.New(rand.NewPCG(1, 2))
	compared, sent, disagree := 0, 0, 0
	for i, r := range runs {
		ns := fmt.Sprintf("tr-ck-%d-%d", i, os.Getpid())
		c, s, d := differential(t, ns, r.c.yaml, r.c.vpn, r.up, per, rng, replay[fmt.Sprintf("%s/%v", r.c.name, r.up)], r.c.foreign)
		t.Logf("%s (vpn up: %v): %d packets compared, %d sent for real, %d disagreements", r.c.name, r.up, c, s, d)
		compared, sent, disagree = compared+c, sent+s, disagree+d
	}
	t.Logf("total: %d packets compared with the kernel (%d sent for real), %d disagreements", compared, sent, disagree)
	if disagree > 0 {
		t.Errorf("%d disagreements with the kernel", disagree)
	}
}

// labNamespace builds the lab client in a namespace: eth0 (the uplink),
// wg0 (a tunnel), and tun0 when the VPN is up; veth pairs stand for them.
func labNamespace(t *testing.T, ns string, vpnUp bool) {
	_ = exec.Command("ip", "netns", "del", ns).Run()
	testns.Cmd(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip := func(args ...string) { testns.Cmd(t, append([]string{"ip", "-n", ns}, args...)...) }
	ip("link", "set", "lo", "up")
	devs := []string{"eth0", "wg0"}
	if vpnUp {
		devs = append(devs, "tun0")
	}
	for _, d := range devs {
		ip("link", "add", d, "type", "veth", "peer", "name", d+"p")
		// No link-local addresses: their duplicate address detection
		// would change the routing after the state was read.
		ip("link", "set", d, "addrgenmode", "none")
		ip("link", "set", d+"p", "addrgenmode", "none")
		ip("link", "set", d, "up")
		ip("link", "set", d+"p", "up")
	}
	ip("addr", "add", "10.1.0.2/24", "dev", "eth0")
	ip("-6", "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad")
	ip("addr", "add", "10.30.0.2/24", "dev", "wg0")
	ip("-6", "addr", "add", "2001:db8:30::2/64", "dev", "wg0", "nodad")
	if vpnUp {
		ip("addr", "add", "10.8.0.2/24", "dev", "tun0")
	}
	ip("route", "add", "default", "via", "10.1.0.1", "dev", "eth0")
	ip("-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "eth0")
}

func observeNS(t *testing.T, ns string) *state.State {
	t.Helper()
	return kerneltest.Settled(t, ns, 50, 0, nil)
}

// applyDesired adds the compiled objects to the namespace.
func applyDesired(t *testing.T, ns string, d *state.State) {
	var ops []state.Op
	if d.Firewall != nil {
		ops = append(ops, state.Op{Action: state.Add, Firewall: d.Firewall})
	}
	for i := range d.Addrs {
		ops = append(ops, state.Op{Action: state.Add, Addr: &d.Addrs[i]})
	}
	for _, gw := range []bool{false, true} {
		for i := range d.Routes {
			r := &d.Routes[i]
			has := len(r.Nexthops) > 0 && r.Nexthops[0].Gateway.IsValid()
			if has == gw {
				ops = append(ops, state.Op{Action: state.Add, Route: r})
			}
		}
	}
	for i := range d.Rules {
		ops = append(ops, state.Op{Action: state.Add, Rule: &d.Rules[i]})
	}
	if _, err := kerneltest.Open(t, ns).Execute(ops); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// sample is a packet and the fate check gives it.
type sample struct {
	p              Packet
	want           Fate
	counterexample bool
}

func differential(t *testing.T, ns, yaml string, vpn, up bool, n int, rng *rand.Rand, replay []sample, foreign []string) (compared, sent, disagree int) {
	labNamespace(t, ns, vpn && up)
	obs := observeNS(t, ns)
	cfg := parseConfig(t, yaml)
	var fs map[string]*facts.VPN
	if vpn {
		f := vpnFacts("work", "openvpn", "tun0", "10.8.0.2/24")
		f.Gateway4, f.Down = netip.MustParseAddr("10.8.0.1"), !up
		fs = map[string]*facts.VPN{"work": f}
	}
	res, err := compile.Compile(cfg, obs, fs)
	if err != nil {
		t.Fatal(err)
	}
	applyDesired(t, ns, res.State)
	for _, c := range foreign {
		if rest, ok := strings.CutPrefix(c, "exec "); ok {
			testns.Cmd(t, append([]string{"ip", "netns", "exec", ns}, strings.Fields(rest)...)...)
			continue
		}
		testns.Cmd(t, append([]string{"ip", "-n", ns}, strings.Fields(c)...)...)
	}
	st := observeNS(t, ns)
	modified := true
	st.Hidden.RulesModified = &modified
	pol := PolicyOf(cfg, res, st, fs)
	sc := Scenario{State: st, Tunnels: TunnelDevices(cfg, res), Policy: &pol, Identities: map[string]string{}}
	for _, id := range res.Identities {
		sc.Identities[id.Name] = id.Device
		if !id.Down {
			sc.Up = append(sc.Up, id.Name)
		}
	}

	// The classes, then packets drawn at random inside random classes.
	var cells []*Cell
	if err := Walk([]Scenario{sc}, nil, func(c *Cell) {
		cp := *c
		cp.Fates = slices.Clone(c.Fates)
		cells = append(cells, &cp)
	}); err != nil {
		t.Fatal(err)
	}
	samples := slices.Clone(replay)
	// The real state proves what the fixture proves: no false alarm.
	rep, err := Prove([]Scenario{sc}, append(Builtins(), Assertions(cfg)...))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		for _, v := range r.Violations {
			if len(replay) == 0 && len(foreign) == 0 {
				t.Errorf("%s: %s broken in the real namespace: %s: %s", ns, r.Name, v.Example, v.Why)
			}
		}
	}
	for tries := 0; len(samples) < n && tries < 20*n; tries++ {
		c := cells[rng.IntN(len(cells))]
		if p, ok := c.randomPacket(rng); ok {
			samples = append(samples, sample{p, c.Fates[0], false})
		}
	}
	// The kernel's routes, asked in batches until every re-route is known.
	answers := map[string]kernelAnswer{}
	kr := func(q fib.Query) (KernelAnswer, error) {
		a, ok := answers[q.String()]
		if !ok {
			return KernelAnswer{}, errMiss
		}
		if a.err != "" {
			return KernelAnswer{}, errors.New(a.err)
		}
		return KernelAnswer{Dev: a.dev, Src: a.src, Type: a.typ}, nil
	}
	for pass := 0; pass < 3; pass++ {
		var missing []string
		seen := map[string]bool{}
		collect := func(q fib.Query) (KernelAnswer, error) {
			a, err := kr(q)
			if errors.Is(err, errMiss) && !seen[q.String()] {
				seen[q.String()] = true
				missing = append(missing, q.String())
			}
			return a, err
		}
		for _, s := range samples {
			KernelFate(&s.p, st, sc.Tunnels, collect)
		}
		if len(missing) == 0 {
			break
		}
		for i, a := range ipRouteGet(t, ns, missing) {
			answers[missing[i]] = a
		}
	}
	counters := newPostCounters(t, ns, st)
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	realBudget := 40
	for _, s := range samples {
		got := KernelFate(&s.p, st, sc.Tunnels, kr)
		how := "ip route get + nfteval"
		if (realBudget > 0 || s.counterexample) && sendable(&s.p) {
			realBudget--
			sent++
			got = counters.send(t, h, &s.p)
			how = "a real packet"
		}
		compared++
		if how == "a real packet" && got.Kind == Dropped && s.want.Kind == Dropped {
			continue
		}
		if !Agree(got, s.want) {
			disagree++
			if disagree <= 10 {
				t.Errorf("%s: %s: check says %v, the kernel (%s) %v", ns, s.p.String(), s.want, how, got)
			}
		}
	}
	return compared, sent, disagree
}

var errMiss = errors.New("not asked yet")

type kernelAnswer struct {
	dev, err, typ string
	src           netip.Addr
}

// ipRouteGet asks the kernel, through `ip -batch -force`, for each query.
func ipRouteGet(t *testing.T, ns string, qs []string) []kernelAnswer {
	var in strings.Builder
	for _, q := range qs {
		in.WriteString("route get " + q + "\n")
	}
	cmd := exec.Command("ip", "-n", ns, "-j", "-force", "-batch", "-")
	cmd.Stdin = strings.NewReader(in.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	out := make([]kernelAnswer, len(qs))
	done := make([]bool, len(qs))
	// An error prints its message, then "Command failed -:LINE".
	var pending []string
	for _, m := range strings.Split(stderr.String(), "\n") {
		for {
			loc := failedLine.FindStringSubmatchIndex(m)
			if loc == nil {
				if strings.TrimSpace(m) != "" {
					pending = append(pending, strings.TrimSpace(m))
				}
				break
			}
			if pre := strings.TrimSpace(m[:loc[0]]); pre != "" {
				pending = append(pending, pre)
			}
			if ln, _ := strconv.Atoi(m[loc[2]:loc[3]]); ln >= 1 && ln <= len(qs) {
				msg := strings.TrimPrefix(strings.Join(pending, " "), "RTNETLINK answers: ")
				out[ln-1], done[ln-1] = kernelAnswer{err: msg}, true
			}
			pending = nil
			m = m[loc[1]:]
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	j := 0
	for i := range out {
		if done[i] {
			continue
		}
		if j >= len(lines) {
			t.Fatalf("ip -batch: too few answers")
		}
		out[i] = parseRouteGet(lines[j])
		j++
	}
	return out
}

var failedLine = regexp.MustCompile(`Command failed [^:]*:(\d+)`)

func parseRouteGet(s string) kernelAnswer {
	var rs []struct {
		Type    string `json:"type"`
		Dev     string `json:"dev"`
		Prefsrc string `json:"prefsrc"`
	}
	if err := json.Unmarshal([]byte(s), &rs); err != nil || len(rs) == 0 {
		return kernelAnswer{err: "unparsed: " + s}
	}
	a := kernelAnswer{dev: rs[0].Dev, typ: rs[0].Type}
	if rs[0].Type == "local" {
		a.dev = "lo"
	}
	if p, err := netip.ParseAddr(rs[0].Prefsrc); err == nil {
		a.src = p
	}
	return a
}

// randomPacket draws a packet at random inside the cell; ok is false when
// the cell holds nothing the kernel's route query can name.
func (c *Cell) randomPacket(rng *rand.Rand) (Packet, bool) {
	sp, cu := c.sp, c.cube
	p := c.Packet
	atom := func(set bitset) int {
		var all []int
		set.each(func(i int) bool { all = append(all, i); return true })
		return all[rng.IntN(len(all))]
	}
	in := func(lo, hi u128) u128 {
		if lo == hi {
			return lo
		}
		v := u128{hi: lo.hi, lo: rng.Uint64()}
		if lo.hi != hi.hi {
			v.hi = lo.hi + rng.Uint64N(hi.hi-lo.hi+1)
		} else if hi.lo-lo.lo != ^uint64(0) {
			v.lo = lo.lo + rng.Uint64N(hi.lo-lo.lo+1)
		}
		if v.less(lo) {
			v = lo
		}
		if hi.less(v) {
			v = hi
		}
		return v
	}
	inAtom := func(a *ivAtoms, i int) u128 { return in(a.starts[i], a.last(i)) }
	// Protocols the route query names.
	var protos []uint8
	cu[dProto].each(func(i int) bool {
		v := uint8(sp.proto.starts[i].lo)
		if querySupported(v, sp.fam) && sp.proto.last(i) == sp.proto.starts[i] {
			protos = append(protos, v)
		}
		return true
	})
	if len(protos) == 0 {
		return p, false
	}
	p.Proto = protos[rng.IntN(len(protos))]
	p.SPort = uint16(inAtom(sp.sport, atom(cu[dSPort])).lo)
	p.DPort = uint16(inAtom(sp.dport, atom(cu[dDPort])).lo)
	p.ICMPType = uint8(inAtom(sp.icmp, atom(cu[dICMP])).lo)
	if !hasPorts(p.Proto) {
		p.SPort, p.DPort = 0, 0
	}
	if p.Forwarded() {
		iif := sp.iif.names[atom(cu[dIIF])]
		p.IIF = iif
		p.Src = uAddr(inAtom(sp.src, atom(cu[dSrc])), sp.fam)
	} else {
		p.UID = uint32(inAtom(sp.uid, atom(cu[dUID])).lo)
		si := atom(cu[dSrc])
		if sp.src.starts[si] == (u128{}) && sp.src.last(si) == (u128{}) {
			p.Src = netip.Addr{}
		} else {
			p.Src = uAddr(inAtom(sp.src, si), sp.fam)
		}
		mi := atom(cu[dMark])
		p.Mark = sp.mark.reps[mi]
		for k := 0; k < 8; k++ {
			if v := rng.Uint32(); sp.mark.atom(v) == mi {
				p.Mark = v
				break
			}
		}
		p.Cgroup = sp.cgroup.names[atom(cu[dCgroup])]
	}
	iv := c.group.ivs[rng.IntN(len(c.group.ivs))]
	p.Dst = uAddr(in(iv[0], iv[1]), sp.fam)
	if p.Src.IsValid() && p.Src.Is4() != p.Dst.Is4() {
		return p, false
	}
	return p, true
}

// sendable: a packet this test can send for real from the namespace.
func sendable(p *Packet) bool {
	if p.Forwarded() || p.UID != 0 || p.Cgroup != "" || p.Proto == 6 || p.Proto == 17 && p.DPort == 0 {
		return false
	}
	if p.Src.IsValid() && (p.Src.IsLinkLocalUnicast() || p.Src.IsLoopback()) || p.Dst.IsLinkLocalUnicast() {
		return false // binding a link-local address needs a scope
	}
	if (p.Proto == 1 || p.Proto == 58) && p.ICMPType != 8 && p.ICMPType != 128 {
		return false // only echo requests: errors and neighbour discovery are the kernel's own chatter
	}
	for _, sp := range specials(p.Family) {
		if sp.Contains(p.Dst) {
			return false
		}
	}
	return true
}

// postCounters count, per device, what leaves the namespace (a table of
// the test's own, after everything at postrouting).
type postCounters struct {
	ns   string
	devs []string
}

func newPostCounters(t *testing.T, ns string, st *state.State) *postCounters {
	pc := &postCounters{ns: ns}
	var rules []string
	for _, l := range st.Links {
		pc.devs = append(pc.devs, l.Name)
		rules = append(rules, fmt.Sprintf("oifname %q counter comment %q", l.Name, l.Name))
	}
	// The kernel's own chatter (neighbour discovery, MLD, router
	// solicitations of the veth ends) is not counted.
	// Nor the ICMP errors the kernel sends back for earlier packets (an
	// address that never answered neighbour discovery, a closed port).
	rules = append([]string{"ip6 daddr ff00::/8 return", "icmpv6 type { 1, 2, 3, 4, 133, 134, 135, 136, 143 } return",
		"icmp type { 3, 4, 5, 11, 12 } return"}, rules...)
	script := "table inet trck {\n chain post {\n  type filter hook postrouting priority 500;\n  " + strings.Join(rules, "\n  ") + "\n }\n}\n"
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return pc
}

func (pc *postCounters) read(t *testing.T) map[string]uint64 {
	out, err := exec.Command("ip", "netns", "exec", pc.ns, "nft", "-j", "list", "chain", "inet", "trck", "post").Output()
	if err != nil {
		t.Fatalf("nft list: %v", err)
	}
	m, err := testns.NftCounters(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// send sends p for real from the namespace and says what became of it.
func (pc *postCounters) send(t *testing.T, ns netns.NsHandle, p *Packet) Fate {
	before := pc.read(t)
	err := sendIn(ns, p)
	after := pc.read(t)
	var left []string
	for _, d := range pc.devs {
		if after[d] > before[d] {
			left = append(left, d)
		}
	}
	switch {
	case len(left) == 1 && left[0] == "lo":
		return Fate{Kind: Local, Dev: "lo"}
	case len(left) == 1:
		return Fate{Kind: Out, Dev: left[0]}
	case len(left) > 1:
		return Fate{Kind: Out, Dev: strings.Join(left, "+")}
	case errors.Is(err, syscall.EPERM):
		// A real packet shows that the firewall dropped it, not which
		// rule did (the comparison then looks at the kind only).
		return Fate{Kind: Dropped}
	case err != nil:
		return Fate{Kind: Refused, Reason: err.Error()}
	}
	return Fate{Kind: Refused, Reason: "vanished without an error"}
}

// sendIn sends one UDP datagram or ICMP echo from inside ns.
func sendIn(ns netns.NsHandle, p *Packet) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	defer netns.Set(orig)
	fam := syscall.AF_INET
	if p.Family == 6 {
		fam = syscall.AF_INET6
	}
	var fd int
	var payload []byte
	port := 0
	switch p.Proto {
	case 17:
		fd, err = syscall.Socket(fam, syscall.SOCK_DGRAM, 0)
		payload, port = []byte("tunroute check"), int(p.DPort)
	default:
		proto := syscall.IPPROTO_ICMP
		if p.Family == 6 {
			proto = syscall.IPPROTO_ICMPV6
		}
		fd, err = syscall.Socket(fam, syscall.SOCK_RAW, proto)
		payload = icmpEcho(p)
	}
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_MARK, int(p.Mark)); err != nil {
		return err
	}
	// A broadcast is what the sender meant: ip route get answers for it so.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); err != nil {
		return err
	}
	sport := 0
	if p.Proto == 17 {
		sport = int(p.SPort)
	}
	if p.Src.IsValid() || sport != 0 {
		src := p.Src
		if !src.IsValid() {
			src = netip.IPv4Unspecified()
			if p.Family == 6 {
				src = netip.IPv6Unspecified()
			}
		}
		if err := syscall.Bind(fd, sockaddr(src, sport)); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
	}
	return syscall.Sendto(fd, payload, syscall.MSG_DONTWAIT, sockaddr(p.Dst, port))
}

func sockaddr(a netip.Addr, port int) syscall.Sockaddr {
	if a.Is4() {
		return &syscall.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	return &syscall.SockaddrInet6{Addr: a.As16(), Port: port}
}

func icmpEcho(p *Packet) []byte {
	b := make([]byte, 16)
	b[0] = p.ICMPType
	binary.BigEndian.PutUint16(b[4:], 0x7472)
	binary.BigEndian.PutUint16(b[6:], 1)
	copy(b[8:], "tunroute")
	if p.Family == 4 {
		var sum uint32
		for i := 0; i < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
	}
	return b
}
