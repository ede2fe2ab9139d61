package vpntest

import (
	"net/netip"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/lab"
)

// wireguardKind is the lab's own VPN (wireguard-go, run by this process):
// the examples written for wg0 are applied in it.
var wireguardKind = &kind{name: "wireguard", short: "wg", clientDev: lab.WGDevice,
	transport: []transport{{unix.IPPROTO_UDP, lab.WGPort}}, tunnel6: true}

// TestWireGuardExamples applies the examples that use wg0 in the lab,
// with traffic: a full tunnel that keeps the LAN, and the port selectors'
// telnet through / ssh around. Nothing may leave the uplink in clear but what
// each allows.
func TestWireGuardExamples(t *testing.T) {
	t.Parallel()
	w := newLab(t, wireguardKind)
	tun, err := w.lab.StartWireGuard(t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tun.Close)
	use := func(t *testing.T, example string) {
		t.Helper()
		w.cfg = filepath.Join("..", "..", "examples", example)
		w.apply(t, w.cfg)
		t.Cleanup(func() {
			if out, code := w.tr(t, "--run-dir", w.runDir, "down", "--netns", w.client); code != 0 {
				t.Errorf("tunroute down: exit %d\n%s", code, out)
			}
		})
	}
	inet := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

	t.Run("full-tunnel-lan", func(t *testing.T) {
		use(t, "full-tunnel-lan.yaml")
		before := w.read(t)
		outs := reachInet(w.client)
		for _, o := range outs {
			if o.err != nil {
				t.Errorf("%v", o)
			} else if o.kind != "icmp" && o.saw != w.serverAddr(o.v6) {
				t.Errorf("%s: inet saw %s, want the VPN server's address", o.what, o.saw)
			}
		}
		// The resolver inside the tunnel answers (the lab's server runs a
		// UDP echo on port 53); the ISP's does not get the query.
		if o := udpTry(w.client, inet(lab.ServerWG4.Addr(), 53), dnsQuery, true); o.err != nil {
			t.Errorf("DNS to the resolver in the tunnel: %v", o)
		}
		dns := queryResolvers(w.client, ispResolver4, ispResolver6)
		// The LAN behind the ISP router keeps its route via the uplink.
		if dev := w.routeDev(t, netip.MustParseAddr("192.168.7.1")); dev != "eth0" {
			t.Errorf("192.168.7.1 (the LAN) is routed to %s, want eth0", dev)
		}
		d := w.read(t).sub(before)
		t.Logf("counters %v%s%s", d, outcomes(outs), outcomes(dns))
		if d[cClear4]+d[cClear6]+d[cDNS4]+d[cDNS6] != 0 || d[cTransport4] == 0 {
			t.Errorf("want only WireGuard on the uplink: %v", d)
		}
	})

	t.Run("telnet-ssh-selectors", func(t *testing.T) {
		use(t, "telnet-ssh-selectors.yaml")
		before := w.read(t)
		for _, c := range []struct {
			dst  netip.AddrPort
			want netip.Addr // invalid: blocked
		}{
			{inet(lab.InetEth4.Addr(), telPort), lab.ServerEth4.Addr()},
			{inet(lab.InetEth6.Addr(), telPort), lab.ServerEth6.Addr()},
			{inet(lab.InetEth4.Addr(), sshPort), lab.ClientEth4.Addr()},
			{inet(lab.InetEth6.Addr(), sshPort), lab.ClientEth6.Addr()},
			// Neither: the main table sends it out of the uplink, and
			// the kill switch drops it.
			{inet(lab.InetEth4.Addr(), echoPort), netip.Addr{}},
			{inet(lab.InetEth6.Addr(), echoPort), netip.Addr{}},
		} {
			o := tcpTry(w.client, c.dst)
			switch {
			case !c.want.IsValid() && o.err == nil:
				t.Errorf("%s: went through (seen from %s), want it blocked", o.what, o.saw)
			case c.want.IsValid() && (o.err != nil || o.saw != c.want):
				t.Errorf("%v, want seen from %s", o, c.want)
			default:
				t.Logf("%v", o)
			}
		}
		d := w.read(t).sub(before)
		t.Logf("counters %v", d)
		if d[cClear4]+d[cClear6] != 0 || d[cSelected4] == 0 || d[cSelected6] == 0 {
			t.Errorf("want ssh and WireGuard on the uplink, nothing else: %v", d)
		}
	})
}
