package vpntest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
)

func TestVPN(t *testing.T) {
	t.Parallel()
	eachKind(t, runVPN)
}

// runVPN is the whole story with one daemon: the kill switch goes in
// before the daemon starts, the daemon's hooks bring the tunnel up, then
// the full tunnel, the selectors, every leak scenario, the hooks' input
// checks, and last the removal, with other tools' objects untouched.
func runVPN(t *testing.T, k *kind) {
	t0 := time.Now()
	w := newWorld(t, k)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w.apply(t, w.cfg)
	if got := w.foreignSnapshot(t); got != w.foreign {
		t.Errorf("the first apply changed other tools' objects:\n--- before ---\n%s--- after ---\n%s", w.foreign, got)
	}
	t1 := time.Now()
	if err := w.vpn.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.vpn.StartClient(ctx, true); err != nil {
		t.Fatal(err)
	}
	w.settle()
	t.Logf("%s: server and client up, hooks applied, in %v", k.name, time.Since(t1).Round(time.Millisecond))

	t.Run("FullTunnel", w.fullTunnel)
	t.Run("Selectors", w.selectors)
	t.Run("Leaks", w.leaks)
	t.Run("Attacks", w.attacks)
	t.Run("TakeBack", w.takeBack)
	t.Run("HookFuzz", w.hookFuzz)
	t.Run("Coexistence", w.coexistence)
	t.Logf("%s: whole run %v", k.name, time.Since(t0).Round(time.Millisecond))
}

// fullTunnel: everything the client sends to inet arrives from the VPN
// server's address, and the isp sees nothing from the client but the
// VPN's encapsulated traffic.
func (w *world) fullTunnel(t *testing.T) {
	w.ensureUp(t)
	before := w.read(t)
	outs := reachInet(w.client)
	d := w.read(t).sub(before)
	t.Logf("counters on isp c0: %v%s", d, outcomes(outs))
	for _, o := range outs {
		switch {
		case o.v6 && !w.k.tunnel6:
			if o.err == nil {
				t.Errorf("%s: the tunnel carries no IPv6, yet it went through (%v)", o.what, o.saw)
			}
		case o.err != nil:
			t.Errorf("%s: %v", o.what, o.err)
		case o.kind == "icmp":
			// The reply comes from inet; who sent the request is seen
			// by the counters.
		case o.saw != w.serverAddr(o.v6):
			t.Errorf("%s: inet saw %s, want the VPN server's %s", o.what, o.saw, w.serverAddr(o.v6))
		}
	}
	if d[cTransport4] == 0 {
		t.Errorf("no VPN transport packets counted on isp c0: %v", d)
	}
	for _, c := range []string{cClear4, cClear6, cSelected4, cSelected6, cServer4, cServer6, cTransport6, cOptions4, cRH6} {
		if d[c] != 0 {
			t.Errorf("isp c0 saw %d packets of %s from the client, want only the VPN transport", d[c], c)
		}
	}
}

func (w *world) serverAddr(v6 bool) netip.Addr {
	if v6 {
		return lab.ServerEth6.Addr()
	}
	return lab.ServerEth4.Addr()
}

// selectors: telnet (23) goes through the tunnel, ssh (22) around it,
// from the uplink's address.
func (w *world) selectors(t *testing.T) {
	w.ensureUp(t)
	before := w.read(t)
	for _, c := range []struct {
		dst  netip.Addr
		port uint16
		want netip.Addr // invalid: must not get through
	}{
		{lab.InetEth4.Addr(), telPort, lab.ServerEth4.Addr()},
		{lab.InetEth4.Addr(), sshPort, lab.ClientEth4.Addr()},
		{lab.InetEth6.Addr(), sshPort, lab.ClientEth6.Addr()},
		{lab.InetEth6.Addr(), telPort, w.tunnelOrNothing6()},
	} {
		o := tcpTry(w.client, netip.AddrPortFrom(c.dst, c.port))
		switch {
		case !c.want.IsValid() && o.err == nil:
			t.Errorf("%s: went through (seen from %s); the tunnel has no IPv6, so it must be blocked", o.what, o.saw)
		case !c.want.IsValid():
			t.Logf("%s: blocked as it must be (%s)", o.what, shortErr(o.err))
		case o.err != nil:
			t.Errorf("%s: %v", o.what, o.err)
		case o.saw != c.want:
			t.Errorf("%s: inet saw %s, want %s", o.what, o.saw, c.want)
		default:
			t.Logf("%s: seen from %s", o.what, o.saw)
		}
	}
	d := w.read(t).sub(before)
	t.Logf("counters on isp c0: %v", d)
	if d[cSelected4] == 0 || d[cSelected6] == 0 {
		t.Errorf("the ssh connections were not seen in clear on isp c0: %v", d)
	}
	if d[cClear4] != 0 || d[cClear6] != 0 {
		t.Errorf("isp c0 saw other packets in clear: %v", d)
	}
}

func (w *world) tunnelOrNothing6() netip.Addr {
	if w.k.tunnel6 {
		return lab.ServerEth6.Addr()
	}
	return netip.Addr{}
}
