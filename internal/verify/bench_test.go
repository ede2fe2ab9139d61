package verify

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/fib/fibbench"
	"github.com/tunroute/tunroute/internal/state"
)

// The figures of the README's "Proving the policy" section:
//
//	go test -run '^$' -bench Check -benchtime 1x ./internal/verify/

// BenchmarkCheckTypical: a full tunnel with a LAN exception, a kill
// switch and DNS restricted, on the lab client: every property, one state.
func BenchmarkCheckTypical(b *testing.B) {
	cfg, err := config.Parse([]byte(readExample(b, "full-tunnel-lan.yaml")), "full-tunnel-lan.yaml", config.Options{TableNames: testTables})
	if err != nil {
		b.Fatal(err)
	}
	var rep *Report
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if rep, _, err = Check(Input{Config: cfg, Observed: labClient()}); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(rep.Cells), "classes")
	fmt.Printf("typical config (full-tunnel-lan.yaml): %d classes, %d properties, %v per check\n", rep.Cells, len(rep.Results), per.Round(time.Microsecond))
}

// fourVPNs is the lab client with four VPNs, a redirect through the
// first, office networks through the others, and a kill switch.
const fourVPNs = `
vpns:
  - {name: vpn0, type: openvpn, servers: ["198.51.100.2:1194/udp"]}
  - {name: vpn1, type: openvpn, servers: ["198.51.100.3:1194/udp"]}
  - {name: vpn2, type: tinc, servers: ["198.51.100.4:655/udp"]}
  - {name: vpn3, type: tinc, servers: ["198.51.100.5:655/udp"]}
identities:
  - {name: t0, vpn: vpn0}
  - {name: t1, vpn: vpn1}
  - {name: t2, vpn: vpn2}
  - {name: t3, vpn: vpn3}
  - {name: outside, device: eth0}
redirect: {via: t0}
routes:
  - {to: 10.21.0.0/16, via: t1}
  - {to: 10.22.0.0/16, via: t2}
  - {to: 10.23.0.0/16, via: t3}
select:
  - {proto: tcp, dport: 22, via: outside}
killswitch:
  allow: [{to: 10.1.0.0/24}]
  dns: [10.30.0.1]
assert:
  - {to: 10.21.0.0/16, only_via: [t1]}
  - {uid: 1001, never_via: eth0}
`

func fourVPNInput(b testing.TB) Input {
	cfg, err := config.Parse([]byte(fourVPNs), "four.yaml", config.Options{TableNames: testTables})
	if err != nil {
		b.Fatal(err)
	}
	obs := labClient()
	fs := map[string]*facts.VPN{}
	for i := 0; i < 4; i++ {
		dev := fmt.Sprintf("tun%d", i)
		addr := fmt.Sprintf("10.%d.0.2/24", 8+i)
		obs = withTun(obs, dev, 4+i, addr)
		f := vpnFacts(fmt.Sprintf("vpn%d", i), "openvpn", dev, addr)
		f.Gateway4 = netip.MustParseAddr(fmt.Sprintf("10.%d.0.1", 8+i))
		f.Servers = []facts.Endpoint{{Addr: netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 2+i)), Port: 1194, Proto: "udp"}}
		fs[f.Name] = f
	}
	return Input{Config: cfg, Observed: obs, Facts: fs}
}

// BenchmarkCheckTunnelStates: the four-VPN config in its 2^4 states.
func BenchmarkCheckTunnelStates(b *testing.B) {
	in := fourVPNInput(b)
	var rep *Report
	var err error
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if rep, _, err = Check(in); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	fmt.Printf("four VPNs, %d tunnel states: %d classes x %d states, %d properties, %v per check\n",
		len(rep.Scenarios), rep.Cells, len(rep.Scenarios), len(rep.Results), per.Round(time.Millisecond))
}

// bigState is the lab client with the full-tunnel kill switch, a million
// IPv4 routes of an Internet-like prefix mix through one list's template
// (as a to_file list compiles), and 1,000 rules: 950 by destination and
// 50 by source, or (socketRules) 900 by destination, 50 by source, 25 by
// mark and 25 by uid.
func bigState(b testing.TB, socketRules bool) *state.State {
	_, _, st := compiled(b, readExample(b, "full-tunnel-lan.yaml"), nil)
	spec := fibbench.Generate(1, 1_000_000, 0, 0)
	set := state.RouteSet{Template: state.Route{Table: 254, Type: state.RouteUnicast, Protocol: 116,
		Nexthops: []state.Nexthop{{Gateway: netip.MustParseAddr("10.1.0.1"), Dev: "eth0"}}}}
	for _, r := range spec.Routes {
		set.Dsts = append(set.Dsts, r.Dst)
	}
	st.RouteSets = append(st.RouteSets, set)
	for t := uint32(100); t < 104; t++ {
		st.Routes = append(st.Routes, state.Route{Table: t, Type: state.RouteUnicast, Dst: netip.MustParsePrefix("0.0.0.0/0"),
			Protocol: 116, Scope: state.ScopeLink, Nexthops: []state.Nexthop{{Dev: "wg0"}}})
	}
	for i := 0; i < 1000; i++ {
		r := state.NewRule(4)
		r.Priority, r.Table, r.Protocol = uint32(1000+i), 100+uint32(i%4), 116
		dst := 900
		if !socketRules {
			dst = 950
		}
		switch {
		case i < dst:
			r.Dst = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i/256), byte(i % 256), 0}), 24)
		case i < dst+50:
			r.Src = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(i), 0}), 24)
		case i < 975:
			r.Mark, r.Mask = 0x10000+uint32(i), 0xffff0000|0xffff
		default:
			r.UID = &state.UIDRange{Start: 10000 + uint32(i), End: 10000 + uint32(i)}
		}
		st.Rules = append(st.Rules, r)
	}
	return st
}

func rssMB() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "?"
}

// BenchmarkCheckMillionRoutes: the partition of the big state.
func BenchmarkCheckMillionRoutes(b *testing.B) { benchBig(b, false) }

// BenchmarkCheckMillionRoutesSocketRules: the same with 25 mark and 25
// uid rules among the 1,000: every pair of them is a class of its own
// against every destination class (see the README on what this costs).
func BenchmarkCheckMillionRoutesSocketRules(b *testing.B) { benchBig(b, true) }

func benchBig(b *testing.B, socketRules bool) {
	st := bigState(b, socketRules)
	runtime.GC()
	var cells int
	var classes []*Class
	var err error
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if classes, cells, err = Partition(Scenario{State: st, Tunnels: []string{"wg0"}}); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	what := "950 by destination, 50 by source"
	if socketRules {
		what = "900 by destination, 50 by source, 25 by mark, 25 by uid"
	}
	fmt.Printf("1,000,000 routes + 1,000 rules (%s) + kill switch: %d cells in %d classes, %v per partition, peak RSS %s\n",
		what, cells, len(classes), per.Round(time.Millisecond), rssMB())
}
