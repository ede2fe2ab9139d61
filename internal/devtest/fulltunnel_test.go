package devtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/state"
)

// attack sends n datagrams from the ISP's namespace (an attacker on the
// client's uplink, its gateway) to addr:port on the client, and returns
// how many reached a socket listening there.
func (w *wgWorld) attack(t *testing.T, addr netip.Addr, port uint16, n int) int {
	t.Helper()
	var ln *net.UDPConn
	if err := lab.Do(w.client, func() error {
		var err error
		ln, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out *net.UDPConn
	if err := lab.Do(w.lab.NS(lab.ISP), func() error {
		var err error
		out, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for i := 0; i < n; i++ {
		out.Write([]byte("probe"))
		time.Sleep(5 * time.Millisecond)
	}
	got := 0
	buf := make([]byte, 16)
	for {
		ln.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := ln.ReadFromUDPAddrPort(buf); err != nil {
			return got
		}
		got++
	}
}

// guardDrops reads the guard's counter from tunroute's snapshot.
func (w *wgWorld) guardDrops(t *testing.T) uint64 {
	t.Helper()
	var s state.State
	if err := json.Unmarshal([]byte(mustTR(t, 0, "snapshot", "--netns", w.client)), &s); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if s.Firewall != nil {
		for _, c := range s.Firewall.Chains {
			if c.Name == "wireguard_guard" {
				for _, r := range c.Rules {
					n += r.Packets
				}
			}
		}
	}
	return n
}

// TestWireGuardFullTunnel: `table: auto` gives wg-quick's full tunnel
// (table, not-fwmark rule, suppress_prefixlength 0) for IPv4 and IPv6:
// traffic goes through the tunnel, WireGuard's own packets around it,
// the LAN stays on the LAN; and the CVE-2019-14899 guard drops what an
// attacker on the uplink sends to the tunnel's address, which without it
// arrives (the control).
func TestWireGuardFullTunnel(t *testing.T) {
	w := newWGWorld(t, "f")
	// The attacker (the client's gateway) routes the tunnel's addresses to
	// the client's uplink address.
	ip(t, w.lab.NS(lab.ISP), "route", "add", lab.ClientWG4.Addr().String()+"/32", "via", lab.ClientEth4.Addr().String())
	ip(t, w.lab.NS(lab.ISP), "-6", "route", "add", lab.ClientWG6.Addr().String()+"/128", "via", lab.ClientEth6.Addr().String())

	// Control: the device and its addresses without the routing.
	plain := strings.Replace(w.device(15), "    peers:", "    table: off\n    peers:", 1)
	mustTR(t, 0, "apply", "-c", w.write(t, plain), "--netns", w.client)
	c4, c6 := w.attack(t, lab.ClientWG4.Addr(), 9999, 5), w.attack(t, lab.ClientWG6.Addr(), 9999, 5)
	if c4 == 0 || c6 == 0 {
		t.Fatalf("control: the attacker's datagrams did not reach the tunnel address even without the guard (v4 %d, v6 %d): the test cannot see the attack", c4, c6)
	}

	full := strings.Replace(w.device(15), "    peers:", "    table: auto\n    peers:", 1)
	path := w.write(t, full)
	out := mustTR(t, 2, "plan", "-c", path, "--netns", w.client)
	for _, want := range []string{"not from all fwmark", "suppress_prefixlength 0", "default dev " + w.dev, "iifname != "} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	mustTR(t, 0, "apply", "-c", path, "--netns", w.client)
	if out := mustTR(t, 0, "plan", "-c", path, "--netns", w.client); !strings.Contains(out, "No changes") {
		t.Fatalf("second plan:\n%s", out)
	}
	w.waitHandshake(t)
	if mark := w.observedWG(t).FwMark; mark == 0 {
		t.Fatal("the device has no fwmark: its own packets would loop into the tunnel")
	}
	for _, dst := range []netip.Addr{lab.InetEth4.Addr(), lab.InetEth6.Addr()} {
		want := lab.ServerEth4.Addr()
		if dst.Is6() {
			want = lab.ServerEth6.Addr()
		}
		seen, err := lab.Probe(context.Background(), w.client, netip.Addr{}, netip.AddrPortFrom(dst, lab.EchoPort))
		if err != nil || seen != want {
			t.Fatalf("probe %s: %v, seen from %s, want %s (through the tunnel)", dst, err, seen, want)
		}
	}
	// The LAN (main's connected route, more specific than /0) is not
	// tunnelled: the ISP's address answers from the uplink.
	if r := ip(t, w.client, "route", "get", lab.ISPC04.Addr().String()); !strings.Contains(r, "dev eth0") {
		t.Fatalf("the LAN goes %s", r)
	}

	before := w.guardDrops(t)
	a4, a6 := w.attack(t, lab.ClientWG4.Addr(), 9998, 5), w.attack(t, lab.ClientWG6.Addr(), 9998, 5)
	if a4 != 0 || a6 != 0 {
		t.Fatalf("the attacker's datagrams reached the tunnel address through the guard: v4 %d, v6 %d", a4, a6)
	}
	if d := w.guardDrops(t) - before; d < 10 {
		t.Fatalf("the guard counted %d drops, want at least 10", d)
	}
	// The tunnel still works after the attack.
	if _, err := lab.Probe(context.Background(), w.client, netip.Addr{}, netip.AddrPortFrom(lab.InetEth4.Addr(), lab.EchoPort)); err != nil {
		t.Fatal(err)
	}
	t.Logf("attacker's datagrams reaching the tunnel address: without the guard v4 %d/5 v6 %d/5, with it v4 %d/5 v6 %d/5", c4, c6, a4, a6)

	mustTR(t, 0, "down", "--netns", w.client)
	if r := ip(t, w.client, "rule"); strings.Contains(r, "fwmark") || strings.Contains(r, "suppress") {
		t.Fatalf("rules left after down:\n%s", r)
	}

	// With a kill switch: only WireGuard's own packets to the peer leave
	// the uplink, while the tunnel is up, when the server stops answering,
	// and when the device is deleted.
	counter := newCounter(t, w.lab.NS(lab.ISP), fmt.Sprintf("ip daddr %s udp dport %d accept", lab.ServerEth4.Addr(), lab.WGPort))
	stop := traffic(t, w.client) // control: after down, the counter sees the traffic in clear
	time.Sleep(300 * time.Millisecond)
	stop()
	if counter.read(t) == 0 {
		t.Fatal("control: the counter saw nothing of the traffic in clear")
	}
	mustTR(t, 0, "apply", "-c", w.write(t, full+"killswitch: {}\n"), "--netns", w.client)
	base := counter.read(t)
	stop = traffic(t, w.client)
	defer func() { stop() }()
	time.Sleep(time.Second)
	if _, err := lab.Probe(context.Background(), w.client, netip.Addr{}, netip.AddrPortFrom(lab.InetEth4.Addr(), lab.EchoPort)); err != nil {
		t.Fatalf("through the tunnel with the kill switch: %v", err)
	}
	up := counter.read(t) - base
	w.server.Close()
	time.Sleep(time.Second)
	serverGone := counter.read(t) - base - up
	ip(t, w.client, "link", "del", w.dev)
	time.Sleep(time.Second)
	stop()
	devGone := counter.read(t) - base - up - serverGone
	t.Logf("packets in clear on the uplink: control (after down, 0.3 s) %d; with the kill switch: tunnel up %d, server gone %d, device deleted %d", base, up, serverGone, devGone)
	if up+serverGone+devGone != 0 {
		t.Fatalf("packets in clear: %d up, %d with the server gone, %d with the device deleted", up, serverGone, devGone)
	}
}
