package failovertest

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// Two tunnels (stand-ins: veth links to two VPN servers' namespaces,
// tr-fo2-a and tr-fo2-b, each routing on to the internet) besides the two
// ISPs. The kill switch names them as tunnels.
const tunnelConfig = `
identities:
  - name: isp1
    device: eth0
    gateway: 10.1.0.1
  - name: isp2
    device: eth1
    gateway: 10.2.0.1
  - name: vpn-a
    device: tun-a
    gateway: 10.8.0.1
    health: {targets: [icmp 10.8.0.1], interval: 1s, timeout: 300ms, down: 3, up: 5}
  - name: vpn-b
    device: tun-b
    gateway: 10.9.0.1
    health: {targets: [icmp 10.9.0.1], interval: 1s, timeout: 300ms, down: 3, up: 5}
groups:
  - name: tunnels
    failover: [vpn-a, vpn-b]
routes:
  - to: 198.51.100.0/24
    via: tunnels
killswitch:
  tunnels: [vpn-a, vpn-b]
`

// TestTunnelDead: VPN server A dies (drops everything; its link stays
// up). The traffic moves to tunnel B, and not one packet to the
// destination leaves in clear by either uplink, before, during or after.
func TestTunnelDead(t *testing.T) {
	buildLab(t)
	const nsA, nsB = "tr-fo2-a", "tr-fo2-b"
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", nsA).Run()
		exec.Command("ip", "netns", "del", nsB).Run()
	})
	vpnA, vpnB := relay{nsA, "tun-a", "va"}, relay{nsB, "tun-b", "vb"}
	for _, c := range slices.Concat(
		[]string{"netns add " + nsA, "netns add " + nsB},
		vpnA.links(), vpnB.links(),
		vpnA.addressed("10.8.0.0/24", "10.21.0.0/30"), vpnB.addressed("10.9.0.0/24", "10.22.0.0/30"),
	) {
		ipCmd(t, c)
	}
	for _, ns := range []string{nsA, nsB} {
		testns.Cmd(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	// Count what goes to the destination through either ISP: in clear.
	for _, ns := range []string{nsISP1, nsISP2} {
		testns.Cmd(t, "ip", "netns", "exec", ns, "nft", "add table inet fo; add chain inet fo fw { type filter hook forward priority 0; }; add rule inet fo fw ip daddr 198.51.100.0/24 counter")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrivals, stop := server(t)
	defer stop()
	d := startDaemonWith(t, ctx, tunnelConfig)
	viaA, viaB := netip.MustParseAddr("10.8.0.2"), netip.MustParseAddr("10.9.0.2")
	sender(t, ctx)
	if _, ok := waitFor(arrivals, viaA, time.Now().Add(5*time.Second)); !ok {
		t.Fatalf("no traffic through tunnel A; status %+v", d.prober.Status())
	}
	cut := time.Now()
	testns.Cmd(t, "ip", "netns", "exec", nsA, "nft", "add table inet dead; add chain inet dead in { type filter hook input priority 0; policy drop; }; add chain inet dead fw { type filter hook forward priority 0; policy drop; }")
	a, ok := waitForFresh(arrivals, viaB, cut.Add(10*time.Second))
	if !ok {
		t.Fatalf("no traffic through tunnel B within 10 s of server A's death; status %+v", d.prober.Status())
	}
	time.Sleep(time.Second) // and a while on tunnel B
	clear := 0
	for _, ns := range []string{nsISP1, nsISP2} {
		out := testns.Cmd(t, "ip", "netns", "exec", ns, "nft", "list chain inet fo fw")
		m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
		n, _ := strconv.Atoi(m[1])
		clear += n
	}
	if clear != 0 {
		t.Errorf("%d packets to the destination went through the ISPs in clear", clear)
	}
	fmt.Printf("tunnel dead (server A drops everything): first packet through tunnel B %.2fs after; %d packets in clear on either uplink\n",
		a.at.Sub(cut).Seconds(), clear)
}
