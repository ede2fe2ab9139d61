package failovertest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

// TestNATedFlowMoves: the host is a router: a LAN (tr-fo2-l) behind
// it, masqueraded on the uplinks (the user's NAT), and a UDP flow from the
// LAN runs through the failover group.
// After ISP 1 dies, its connection tracking entry would keep the flow on
// ISP 1's address, which ISP 2 never routes back: forgetting the
// abandoned identity's connections (kernel.ForgetConnections, given
// health.Abandoned) makes the next packet a new connection masqueraded to
// ISP 2's address. Without it (the control), the flow stays stuck.
//
// With masquerade the kernel itself drops a connection whose output
// device changed (nf_nat_oif_changed) and the next packet is masqueraded
// anew; with SNAT rules (`snat to ADDR` per uplink) it does not: there
// forgetting is what moves the flow.
func TestNATedFlowMoves(t *testing.T) {
	const masq = "add rule ip labnat post oifname { eth0, eth1 } masquerade"
	const snat = "add rule ip labnat post oifname eth0 snat to 10.1.0.2; add rule ip labnat post oifname eth1 snat to 10.2.0.2"
	for _, c := range []struct {
		name       string
		nat        string
		forget, ok bool
	}{
		{"snat, forget", snat, true, true},
		{"snat, control without forgetting", snat, false, false},
		{"masquerade, without forgetting", masq, false, true},
	} {
		t.Run(c.name, func(t *testing.T) { natFlow(t, c.name, c.nat, c.forget, c.ok) })
	}
}

func natFlow(t *testing.T, name, nat string, forget, wantMove bool) {
	buildLab(t)
	const nsLAN = "tr-fo2-l"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsLAN).Run() })
	for _, c := range []string{"netns add " + nsLAN, "-n " + nsHost + " link add lan0 type veth peer name eth0 netns " + nsLAN,
		"-n " + nsHost + " addr add 192.168.50.1/24 dev lan0", "-n " + nsLAN + " addr add 192.168.50.2/24 dev eth0",
		"-n " + nsHost + " link set lan0 up", "-n " + nsLAN + " link set eth0 up", "-n " + nsLAN + " link set lo up",
		"-n " + nsLAN + " route add default via 192.168.50.1"} {
		ipCmd(t, c)
	}
	testns.Cmd(t, "ip", "netns", "exec", nsHost, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testns.Cmd(t, "ip", "netns", "exec", nsHost, "nft", "add table ip labnat; add chain ip labnat post { type nat hook postrouting priority 100; }; "+nat)
	// ISP 2 drops what does not come from its customer's address (as
	// ISPs do: BCP 38), so an unforgotten flow cannot sneak through.
	testns.Cmd(t, "ip", "netns", "exec", nsISP2, "nft", "add table inet bcp38; add chain inet bcp38 fw { type filter hook forward priority 0; }; add rule inet bcp38 fw iifname h0 ip saddr != 10.2.0.2 counter drop")
	arrivals, stop := server(t)
	defer stop()
	d := startDaemonWith(t, ctx, strings.ReplaceAll(labConfig, "TIMEOUT", "300ms"))
	d.mu.Lock()
	d.forget = forget
	d.mu.Unlock()

	var conn net.Conn
	var err error
	inNS(t, nsLAN, func() { conn, err = net.Dial("udp", "198.51.100.10:9000") })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go every5ms(ctx, func() { conn.Write([]byte("x")) })
	if _, ok := waitFor(arrivals, isp1Addr, time.Now().Add(3*time.Second)); !ok {
		t.Fatal("the flow does not go through ISP 1 before the cut")
	}
	cut := time.Now()
	runAll(t, dropRule.cut)
	a, ok := waitForFresh(arrivals, isp2Addr, cut.Add(8*time.Second))
	d.mu.Lock()
	forgotten := d.forgotten
	d.mu.Unlock()
	switch {
	case wantMove && !ok:
		t.Fatalf("%s: the flow did not move to ISP 2 within 8 s (%d switches forgot connections)", name, forgotten)
	case wantMove:
		fmt.Printf("NATed UDP flow from the LAN (%s): through ISP 2 %.2fs after the cut (%d switches forgot connections)\n", name, a.at.Sub(cut).Seconds(), forgotten)
	case ok:
		t.Fatalf("%s: the flow moved (at %s); the control proves nothing", name, a.at.Sub(cut))
	default:
		if h := d.prober.Health(); h["isp1"] {
			t.Fatalf("control: isp1 never went down")
		}
		fmt.Printf("NATed UDP flow from the LAN (%s): still stuck 8 s after the cut\n", name)
	}
}
