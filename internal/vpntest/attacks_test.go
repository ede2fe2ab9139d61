package vpntest

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
)

// An attack is a way a process with root or CAP_NET_RAW on the client
// (malware, a tool that bypasses the VPN) gets packets out of the uplink
// in clear past a kill switch that only looks at the packet's type, its
// first destination or the output device before a later re-route. Each
// sends attackPackets packets per variant; the isp counts what arrives
// on c0.
type attack struct {
	name string
	// setup puts another tool's objects in place (none if nil) and
	// returns what removes them.
	setup func(w *world, t *testing.T) func()
	send  func(w *world, t *testing.T) []outcome
	// uncovered: a gap the README names under "What the kill switch
	// does not cover"; the test checks the gap is real (packets do
	// leave), so that the README is corrected the day it is closed.
	uncovered bool
}

const attackPackets = 4

var attacks = []attack{
	{name: "nd-types-to-internet", send: ndToInternet},
	{name: "ipv4-source-route", send: sourceRoute4},
	{name: "ipv6-routing-header", send: routingHeader6},
	{name: "late-reroute-by-mark", setup: lateReroute, send: udpToInet},
	{name: "late-dnat-from-lan", setup: lateDNAT, send: udpToLANAddress},
	{name: "dhcp-ports-to-internet", send: dhcpPortsToInet},
	{name: "af-packet-frame", send: rawFrame, uncovered: true},
}

// attackLAN6 is the IPv6 LAN the attacks' config also allows in clear:
// a routing header's first hop is an allowed address.
const attackLAN6 = "2001:db8:1::/64"

// attacks runs every attack with the kill switch (nothing may leave in
// clear) and then without it (the counters must see each one, or they
// prove nothing).
func (w *world) attacks(t *testing.T) {
	w.ensureUp(t)
	withKS := w.attackConfig(t, true)
	without := w.attackConfig(t, false)
	w.apply(t, withKS)
	defer w.apply(t, w.cfg)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			got := w.runAttack(t, a)
			row := leakRow{kind: w.k.name, scenario: "attack: " + a.name, clear4: got[0], clear6: got[1]}
			if a.uncovered {
				row.note = "not covered (README: What the kill switch does not cover)"
				recordLeak(row)
				if got[0]+got[1] == 0 {
					t.Errorf("the README says the kill switch does not cover this, yet nothing left: correct the README")
				}
				return
			}
			recordLeak(row)
			if got[0] != 0 || got[1] != 0 {
				t.Errorf("LEAK: %d IPv4 and %d IPv6 packets left the client's uplink in clear", got[0], got[1])
			}
		})
	}
	w.apply(t, without)
	for _, a := range attacks {
		t.Run("control-"+a.name, func(t *testing.T) {
			got := w.runAttack(t, a)
			recordLeak(leakRow{kind: w.k.name, scenario: "(control: " + a.name + ")", clear4: got[0], clear6: got[1],
				note: "no kill switch; must be > 0"})
			if got[0]+got[1] == 0 {
				t.Errorf("without the kill switch the attack must leak, and the counters must see it")
			}
		})
	}
}

// runAttack returns the IPv4 and IPv6 packets the isp counted in clear.
func (w *world) runAttack(t *testing.T, a attack) [2]uint64 {
	if a.setup != nil {
		defer a.setup(w, t)()
	}
	before := w.read(t)
	outs := a.send(w, t)
	d := w.read(t).sub(before)
	t.Logf("counters %v%s", d, outcomes(outs))
	return [2]uint64{d[cClear4] + d[cOptions4], d[cClear6] + d[cRH6]}
}

// attackConfig is the config under test with the IPv6 LAN allowed in
// clear too, or without its kill switch.
func (w *world) attackConfig(t *testing.T, killswitch bool) string {
	cfg := w.example
	name := "attacks-no-killswitch.yaml"
	if killswitch {
		lan := regexp.MustCompile(`(?m)^(\s*)- to: 10\.1\.0\.0/24.*$`)
		if !lan.MatchString(cfg) {
			t.Fatalf("%s: no `- to: 10.1.0.0/24` in its kill switch's allow list", w.k.example)
		}
		cfg = lan.ReplaceAllString(cfg, "$0\n${1}- to: "+attackLAN6)
		name = "attacks.yaml"
	} else {
		cfg = strings.Split(cfg, "killswitch:")[0]
	}
	path := filepath.Join(w.dir, name)
	if err := os.WriteFile(path, []byte(cfg+selectBlock(w.k.tunnelID)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// rawSend opens a raw socket in the client's namespace, bound to the
// uplink eth0 as an attacker would, and sends each packet to dst.
func rawSend(w *world, domain, proto int, dst netip.Addr, opts func(fd int) error, pkts [][]byte) outcome {
	o := newOutcome(fmt.Sprintf("raw%d", proto), netip.AddrPortFrom(dst, 0))
	o.err = lab.Do(w.client, func() error {
		fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "eth0"); err != nil {
			return err
		}
		if opts != nil {
			if err := opts(fd); err != nil {
				return err
			}
		}
		var sa unix.Sockaddr
		if dst.Is6() {
			sa = &unix.SockaddrInet6{Addr: dst.As16()}
		} else {
			sa = &unix.SockaddrInet4{Addr: dst.As4()}
		}
		var firstErr error
		for _, p := range pkts {
			if err := unix.Sendto(fd, p, 0, sa); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		return firstErr
	})
	return o
}

// ndToInternet: ICMPv6 of the types neighbour discovery and MLD use, with
// ND's hop limit 255, addressed to inet: a kill switch that accepts these
// types whatever the destination lets them through, and the isp forwards
// them.
func ndToInternet(w *world, t *testing.T) []outcome {
	dst := lab.InetEth6.Addr()
	var outs []outcome
	for _, typ := range []byte{133, 135, 136, 143, 131} {
		msg := make([]byte, 24) // type, code, checksum (the kernel's), reserved, target
		msg[0] = typ
		copy(msg[8:], dst.AsSlice())
		pkts := make([][]byte, attackPackets)
		for i := range pkts {
			pkts[i] = msg
		}
		hops := func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255) }
		o := rawSend(w, unix.AF_INET6, unix.IPPROTO_ICMPV6, dst, hops, pkts)
		o.what = fmt.Sprintf("icmpv6 type %d to %s", typ, dst)
		outs = append(outs, o)
	}
	return outs
}

// udpPayload is a UDP header and payload to inet's UDP echo port, with no
// checksum (the counters do not look).
func udpPayload() []byte {
	b := make([]byte, 8, 16)
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], udpPort)
	b = append(b, "tr-ks-rt"...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	return b
}

// sourceRoute4: IPv4 to the LAN's gateway (allowed in clear) carrying a
// loose (then strict) source route, or record route, whose remaining hop
// is inet: a router that honours the option forwards it to inet.
func sourceRoute4(w *world, t *testing.T) []outcome {
	gw, far := lab.ISPC04.Addr(), lab.InetEth4.Addr()
	var outs []outcome
	for _, opt := range []struct {
		name string
		typ  byte
	}{{"lsrr", 131}, {"ssrr", 137}, {"rr", 7}} {
		// option: type, length 7, pointer 4, one address; then a NOP.
		ihl := 7
		h := make([]byte, ihl*4)
		h[0] = 0x40 | byte(ihl)
		h[8] = 64 // TTL
		h[9] = unix.IPPROTO_UDP
		copy(h[12:], lab.ClientEth4.Addr().AsSlice())
		copy(h[16:], gw.AsSlice())
		copy(h[20:], []byte{opt.typ, 7, 4})
		copy(h[23:], far.AsSlice())
		h[27] = 1 // NOP
		pkt := append(h, udpPayload()...)
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		pkts := make([][]byte, attackPackets)
		for i := range pkts {
			pkts[i] = pkt
		}
		o := rawSend(w, unix.AF_INET, unix.IPPROTO_RAW, gw, nil, pkts)
		o.what = fmt.Sprintf("ipv4 %s via %s to %s", opt.name, gw, far)
		outs = append(outs, o)
	}
	return outs
}

// routingHeader6: IPv6 to the LAN's gateway (allowed in clear) with a
// routing header, type 0 (source route) and 4 (segment routing), whose
// next segment is inet.
func routingHeader6(w *world, t *testing.T) []outcome {
	gw, far := lab.ISPC06.Addr(), lab.InetEth6.Addr()
	var outs []outcome
	for _, rtype := range []byte{0, 4} {
		rh := make([]byte, 8+16) // next header, length 2 (x8 after the first 8), type, segments left 1
		rh[0], rh[1], rh[2], rh[3] = unix.IPPROTO_UDP, 2, rtype, 1
		copy(rh[8:], far.AsSlice())
		payload := append(rh, udpPayload()...)
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
		h[6], h[7] = unix.IPPROTO_ROUTING, 64
		copy(h[8:], lab.ClientEth6.Addr().AsSlice())
		copy(h[24:], gw.AsSlice())
		pkt := append(h, payload...)
		pkts := make([][]byte, attackPackets)
		for i := range pkts {
			pkts[i] = pkt
		}
		o := rawSend(w, unix.AF_INET6, unix.IPPROTO_RAW, gw, nil, pkts)
		o.what = fmt.Sprintf("ipv6 routing header type %d via %s to %s", rtype, gw, far)
		outs = append(outs, o)
	}
	return outs
}

// The foreign tool of the late re-route: its mark, table and rule
// preference, and its nftables table.
const (
	foreignMark  = "0x77"
	foreignTable = "77"
	foreignPref  = "90"
	foreignNFT   = "tr_ks_foreign"
)

// lateReroute: another tool's route-type output chain, at a priority
// after tunroute's, marks UDP to port 9999, and its rule sends the mark
// to a table whose default goes out of the uplink. The packet was routed
// into the tunnel, then re-routed after any check at tunroute's priority.
func lateReroute(w *world, t *testing.T) func() {
	ruleset := fmt.Sprintf(`table inet %s {
	chain out {
		type route hook output priority 100; policy accept;
		meta l4proto udp th dport %d meta mark set %s
	}
}
`, foreignNFT, udpPort, foreignMark)
	if out, err := nft(w.client, ruleset, "-f", "-"); err != nil {
		t.Fatalf("nft -f (the foreign re-route): %v\n%s", err, out)
	}
	ip(t, w.client, "route", "add", "default", "via", lab.ISPC04.Addr().String(), "dev", "eth0", "table", foreignTable)
	ip(t, w.client, "-6", "route", "add", "default", "via", lab.ISPC06.Addr().String(), "dev", "eth0", "table", foreignTable)
	for _, f := range []string{"-4", "-6"} {
		ip(t, w.client, f, "rule", "add", "fwmark", foreignMark, "lookup", foreignTable, "pref", foreignPref)
	}
	return func() {
		nft(w.client, "", "delete", "table", "inet", foreignNFT)
		for _, f := range []string{"-4", "-6"} {
			ip(t, w.client, f, "rule", "del", "pref", foreignPref)
			ip(t, w.client, f, "route", "flush", "table", foreignTable)
		}
	}
}

func udpToInet(w *world, t *testing.T) []outcome {
	var outs []outcome
	for _, a := range inetTargets {
		for range attackPackets {
			outs = append(outs, udpTry(w.client, netip.AddrPortFrom(a, udpPort), []byte("tr-ks"), false))
		}
	}
	return outs
}

// lanDecoy is a LAN address (allowed in clear) the late NAT rewrites.
var lanDecoy = netip.MustParseAddr("10.1.0.99")

// lateDNAT: another tool's NAT output chain, at a priority after
// tunroute's, rewrites UDP to a LAN address (allowed in clear) to inet's
// address, and a hostile DHCP route sends inet's prefix out of the uplink:
// a check of the destination before the NAT saw the LAN.
func lateDNAT(w *world, t *testing.T) func() {
	ruleset := fmt.Sprintf(`table ip %s {
	chain out {
		type nat hook output priority 100; policy accept;
		ip daddr %s udp dport %d dnat to %s
	}
}
`, foreignNFT, lanDecoy, udpPort, lab.InetEth4.Addr())
	if out, err := nft(w.client, ruleset, "-f", "-"); err != nil {
		t.Fatalf("nft -f (the foreign NAT): %v\n%s", err, out)
	}
	ip(t, w.client, "route", "add", "203.0.113.0/24", "via", lab.ISPC04.Addr().String(), "dev", "eth0")
	return func() {
		nft(w.client, "", "delete", "table", "ip", foreignNFT)
		ip(t, w.client, "route", "del", "203.0.113.0/24")
	}
}

func udpToLANAddress(w *world, t *testing.T) []outcome {
	var outs []outcome
	for range attackPackets {
		outs = append(outs, udpTry(w.client, netip.AddrPortFrom(lanDecoy, udpPort), []byte("tr-ks"), false))
	}
	return outs
}

// dhcpPortsToInet: UDP from the DHCP client's port to the server's port
// (68->67, 546->547), addressed to inet: a kill switch that allows DHCP
// by its ports alone lets anything out that way.
func dhcpPortsToInet(w *world, t *testing.T) []outcome {
	var outs []outcome
	for _, c := range []struct {
		dst          netip.Addr
		sport, dport uint16
	}{{lab.InetEth4.Addr(), 68, 67}, {lab.InetEth6.Addr(), 546, 547}} {
		for range attackPackets {
			o := newOutcome("udp", netip.AddrPortFrom(c.dst, c.dport))
			o.err = lab.Do(w.client, func() error {
				domain := unix.AF_INET
				if c.dst.Is6() {
					domain = unix.AF_INET6
				}
				fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "eth0"); err != nil {
					return err
				}
				var local, remote unix.Sockaddr
				if c.dst.Is6() {
					local, remote = &unix.SockaddrInet6{Port: int(c.sport)}, &unix.SockaddrInet6{Port: int(c.dport), Addr: c.dst.As16()}
				} else {
					local, remote = &unix.SockaddrInet4{Port: int(c.sport)}, &unix.SockaddrInet4{Port: int(c.dport), Addr: c.dst.As4()}
				}
				if err := unix.Bind(fd, local); err != nil {
					return err
				}
				return unix.Sendto(fd, []byte("tr-ks-dhcp"), 0, remote)
			})
			outs = append(outs, o)
		}
	}
	return outs
}

// rawFrame: an AF_PACKET socket on the uplink writes Ethernet frames
// carrying IPv4 UDP to inet, addressed to the gateway's MAC address:
// below the IP layer, no nftables inet chain sees them.
func rawFrame(w *world, t *testing.T) []outcome {
	h := nl(t, w.isp)
	c0, err := h.LinkByName("c0")
	h.Delete()
	if err != nil {
		t.Fatal(err)
	}
	o := newOutcome("frame", netip.AddrPortFrom(lab.InetEth4.Addr(), udpPort))
	o.err = lab.Do(w.client, func() error {
		eth0, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ipv4 := make([]byte, 20)
		ipv4[0], ipv4[8], ipv4[9] = 0x45, 64, unix.IPPROTO_UDP
		copy(ipv4[12:], lab.ClientEth4.Addr().AsSlice())
		copy(ipv4[16:], lab.InetEth4.Addr().AsSlice())
		pkt := append(ipv4, udpPayload()...)
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		binary.BigEndian.PutUint16(pkt[10:], labtest.Checksum(pkt[:20]))
		frame := append(append(append([]byte{}, c0.Attrs().HardwareAddr...), eth0.HardwareAddr...), 0x08, 0x00)
		frame = append(frame, pkt...)
		sa := &unix.SockaddrLinklayer{Ifindex: eth0.Index, Protocol: 0x0008} // ETH_P_IP, network order
		for range attackPackets {
			if err := unix.Sendto(fd, frame, 0, sa); err != nil {
				return err
			}
		}
		return nil
	})
	return []outcome{o}
}
