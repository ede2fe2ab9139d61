package daemon

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
)

// TestGatewayMovesOpenVPNReconnects: a roam. The daemon runs with the
// gateway redirect and the kill switch, OpenVPN is up with tunroute's
// hook as its scripts, a stream is sent. The ISP's router moves to
// another address and the client's default route follows (as a DHCP
// client sets it); OpenVPN is told to reconnect (SIGUSR1, as a network
// manager does after a network change; its down and up scripts run the
// hook). The VPN server's host route follows the new gateway, traffic
// flows through the tunnel again, and not one packet leaves the uplink
// in clear.
func TestGatewayMovesOpenVPNReconnects(t *testing.T) {
	v := newVPNWorld(t, "gw", Options{})
	echo, err := lab.ListenEcho(v.lab.NS(lab.Inet), lab.EchoPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Close)
	server := lab.ServerEth4.Addr().String()
	oldGW, newGW := lab.ISPC04.Addr().String(), "10.1.0.254"
	dst := netip.AddrPortFrom(lab.InetEth4.Addr(), lab.EchoPort)
	throughTunnel := func(within time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		for {
			seen, err := lab.Probe(context.Background(), v.top, netip.Addr{}, dst)
			if err == nil && seen == lab.ServerEth4.Addr() {
				return time.Since(t0)
			}
			if time.Since(t0) > within {
				t.Fatalf("no connection through the tunnel within %v (last: seen from %v, %v)", within, seen, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	throughTunnel(5 * time.Second)
	hostRoute := func() string {
		out, _ := exec.Command("ip", "-n", v.top, "route", "show", server).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if r := hostRoute(); !strings.Contains(r, "via "+oldGW) {
		t.Fatalf("the VPN server's host route: %q, want one via %s", r, oldGW)
	}

	s := v.startStream(time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	c0 := v.counts()
	mark := v.ovpn.Client.LogSize()
	drain(v.reps)

	// The roam: the router's address changes, the default route follows.
	// (Deleted first: deleting a primary address takes its secondaries.)
	v.sh("ip -n " + v.isp + " addr del " + oldGW + "/24 dev c0 && ip -n " + v.isp + " addr add " + newGW + "/24 dev c0")
	tMove := time.Now()
	v.sh("ip -n " + v.top + " route replace default via " + newGW + " dev eth0")
	var followed time.Duration
	for !strings.Contains(hostRoute(), "via "+newGW) {
		if time.Since(tMove) > 5*time.Second {
			t.Fatalf("the VPN server's host route did not follow the gateway: %q", hostRoute())
		}
		time.Sleep(2 * time.Millisecond)
	}
	followed = time.Since(tMove)
	rep := waitRepair(t, v.reps, "route")

	// OpenVPN reconnects: its down scripts, then up and route-up, run the hook.
	if err := syscall.Kill(v.ovpn.Client.PID(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.ovpn.Client.WaitLog(ctx, mark, labtest.OpenVPNReady, "Failed running command"); err != nil {
		t.Fatalf("OpenVPN did not reconnect: %v\n%s\n%s", err, v.ovpn.Client.LogTail(), v.dump())
	}
	reconnected := time.Since(tMove)
	flows := throughTunnel(10 * time.Second)
	v.waitInSync(10 * time.Second)
	if r := hostRoute(); !strings.Contains(r, "via "+newGW) {
		t.Errorf("after the reconnect, the VPN server's host route is %q", r)
	}
	time.Sleep(200 * time.Millisecond)
	s.stop()
	d := diffCounts(c0, v.counts())
	t.Logf("gateway %s -> %s: host route followed %.1f ms after the move (the daemon's repair: %.1f ms from the event, %s), OpenVPN up again %.0f ms after the move, traffic through the tunnel %.0f ms after that",
		oldGW, newGW, ms(followed), ms(rep.Latency), strings.Join(keys(rep.Objects), "; "), ms(reconnected), ms(flows))
	t.Logf("stream: %d routed, %d bound to the uplink accepted by the kernel; on the uplink: tunnel %d, in clear: routed %d, bound %d, neighbour discovery %d, other %d",
		s.routed.Load(), s.bound.Load(), d["tunnel"], d["stream routed"], d["stream bound"], d["neighbour discovery"], d["other"])
	if d["tunnel"] == 0 {
		t.Error("nothing went through the tunnel")
	}
	if n := d["stream routed"] + d["stream bound"] + d["other"]; n != 0 {
		t.Errorf("%d packets left the uplink in clear", n)
	}
	st := v.d.Status()
	t.Logf("daemon: %d events, %d hook calls, repairs %v, in sync %v", st.Events, st.Hooks, st.Repairs, st.InSync)
}

// dump shows the client's routing and the ISP's addresses (a failure's
// context).
func (v *vpnWorld) dump() string {
	var b strings.Builder
	for _, c := range []string{
		"ip -n " + v.top + " route get " + lab.ServerEth4.Addr().String(),
		"ip -n " + v.top + " rule", "ip -n " + v.top + " route show table all", "ip -n " + v.top + " neigh",
		"ip -n " + v.isp + " addr show c0", "ip netns exec " + v.top + " nft list ruleset",
	} {
		out, _ := exec.Command("sh", "-c", c).CombinedOutput()
		b.WriteString("$ " + c + "\n" + string(out))
	}
	return b.String()
}
