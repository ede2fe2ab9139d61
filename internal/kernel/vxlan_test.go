package kernel

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// vxlanLink is a tunroute vxlan device as Execute gets it.
func vxlanLink(name string, vni uint32, local, remote, dev, under string) *state.Link {
	l := &state.Link{Name: name, Kind: "vxlan", Up: true, Alias: state.LinkAliasPrefix + "vxlan",
		VXLAN: &state.VXLAN{VNI: vni, Remote: addr(remote), Dev: dev, Port: 4789, UnderlayNamespace: under}}
	if local != "" {
		l.VXLAN.Local = addr(local)
	}
	return l
}

func observedLink(t *testing.T, h *Handle, name string) *state.Link {
	t.Helper()
	s := observeT(t, h, ObserveOptions{})
	for i := range s.Links {
		if s.Links[i].Name == name {
			return &s.Links[i]
		}
	}
	return nil
}

// udpListening reports whether ns has a UDP socket bound to port (read
// from /proc/net/udp inside it).
func udpListening(t *testing.T, ns string, port uint16) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/udp", "/proc/net/udp6").CombinedOutput()
	if err != nil {
		t.Fatalf("reading sockets of %s: %v: %s", ns, err, out)
	}
	return strings.Contains(string(out), fmt.Sprintf(":%04X ", port))
}

// receiver is a UDP socket bound in a namespace that collects datagrams.
func receiver(t *testing.T, ns string, at netip.AddrPort) *sock {
	s := udpSocket(t, ns, false, -1, 0)
	s.bind(t, at)
	tv := unix.NsecToTimeval((300 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return s
}

// drain returns the payloads received until the socket stays quiet.
func (s *sock) drain() map[string]int {
	got := map[string]int{}
	buf := make([]byte, 256)
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			return got
		}
		got[string(buf[:n])]++
	}
}

// sendSlowly sends n datagrams 20ms apart, so that the first ones do not
// all wait for the neighbour to resolve.
func sendSlowly(t *testing.T, ns string, to netip.AddrPort, payload string, n int) {
	s := udpSocket(t, ns, false, -1, 0)
	for i := 0; i < n; i++ {
		s.send(to, 1, []byte(payload))
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVXLANDomainsOverOneUnderlay builds routing domains multiplexed over
// one link: two sites joined by one underlay (a veth pair), and on each
// site two domain namespaces whose vxlan devices (VNI 100 and 200) are
// created from the site's namespace, so their UDP sockets stay there.
// Both VNIs use the same overlay addresses; traffic crosses within a VNI
// and never between.
func TestVXLANDomainsOverOneUnderlay(t *testing.T) {
	needRoot(t)
	siteA, siteB := newNS(t, "vxsa"), newNS(t, "vxsb")
	ipn(t, siteA, "link", "add", "ua", "type", "veth", "peer", "name", "ub", "netns", siteB)
	ipScript(t, siteA, "addr add 198.51.100.1/24 dev ua\nlink set ua up")
	ipScript(t, siteB, "addr add 198.51.100.2/24 dev ub\nlink set ub up")

	type end struct {
		ns, site, dev, local, remote, overlay string
		vni                                   uint32
	}
	ends := map[string]*end{
		"a100": {site: siteA, dev: "ua", local: "198.51.100.1", remote: "198.51.100.2", overlay: "10.0.0.1/24", vni: 100},
		"a200": {site: siteA, dev: "ua", local: "198.51.100.1", remote: "198.51.100.2", overlay: "10.0.0.1/24", vni: 200},
		"b100": {site: siteB, dev: "ub", local: "198.51.100.2", remote: "198.51.100.1", overlay: "10.0.0.2/24", vni: 100},
		"b200": {site: siteB, dev: "ub", local: "198.51.100.2", remote: "198.51.100.1", overlay: "10.0.0.2/24", vni: 200},
	}
	handles := map[string]*Handle{}
	links := map[string]*state.Link{}
	for _, name := range []string{"a100", "a200", "b100", "b200"} {
		e := ends[name]
		e.ns = newNS(t, "vx"+name)
		// No IPv6 on the overlay: its router solicitations and MLD reports
		// would muddy the packet counts below.
		sysctlIn(t, e.ns, "net.ipv6.conf.all.disable_ipv6", "1")
		sysctlIn(t, e.ns, "net.ipv6.conf.default.disable_ipv6", "1")
		h := openT(t, e.ns)
		handles[name] = h
		l := vxlanLink("vx0", e.vni, e.local, e.remote, e.dev, e.site)
		links[name] = l
		a := &state.Addr{Dev: "vx0", Prefix: pfx(e.overlay), Scope: state.ScopeUniverse, Proto: state.Proto}
		applied, err := h.Execute([]state.Op{{Action: state.Add, Link: l}, {Action: state.Add, Addr: a}})
		if err != nil || !applied[0] || !applied[1] {
			t.Fatalf("%s: Execute = %v, %v", name, applied, err)
		}
	}

	// The devices are in the domains, their sockets in the sites.
	for _, ns := range []string{siteA, siteB} {
		if out := ipn(t, ns, "link", "show"); strings.Contains(out, "vx0") {
			t.Errorf("%s holds a vxlan device:\n%s", ns, out)
		}
		if !udpListening(t, ns, 4789) {
			t.Errorf("%s has no UDP socket on 4789", ns)
		}
	}
	for name, e := range ends {
		var ls []struct {
			Name     string   `json:"ifname"`
			Flags    []string `json:"flags"`
			Alias    string   `json:"ifalias"`
			LinkInfo struct {
				Kind string `json:"info_kind"`
				Data struct {
					ID    uint32 `json:"id"`
					Port  uint16 `json:"port"`
					Local string `json:"local"`
				} `json:"info_data"`
			} `json:"linkinfo"`
		}
		ipJSON(t, e.ns, &ls, "-d", "link", "show", "vx0")
		if len(ls) != 1 || ls[0].LinkInfo.Kind != "vxlan" || ls[0].LinkInfo.Data.ID != e.vni || ls[0].LinkInfo.Data.Port != 4789 ||
			ls[0].LinkInfo.Data.Local != e.local || !has(ls[0].Flags, "UP") || ls[0].Alias != state.LinkAliasPrefix+"vxlan" {
			t.Errorf("%s: ip sees %+v", name, ls)
		}
		if udpListening(t, e.ns, 4789) {
			t.Errorf("%s: the domain has the underlay's UDP socket", name)
		}
		// Observe reads the device back as it was asked for, the underlay
		// named through its namespace.
		got := observedLink(t, handles[name], "vx0")
		want := *links[name].VXLAN
		if got == nil || got.Kind != "vxlan" || got.VXLAN == nil || *got.VXLAN != want || !got.Owned() || !got.Up {
			t.Errorf("%s: observed %s, want vxlan %s", name, js(got), js(want))
		}
	}

	// Traffic: each VNI's ends reach each other, both ways, and only them.
	port := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	rx := map[string]*sock{}
	for name, e := range ends {
		rx[name] = receiver(t, e.ns, netip.AddrPortFrom(pfx(e.overlay).Addr(), 7000))
	}
	for _, p := range []struct{ from, to, dst string }{
		{"a100", "b100", "10.0.0.2:7000"}, {"a200", "b200", "10.0.0.2:7000"},
		{"b100", "a100", "10.0.0.1:7000"}, {"b200", "a200", "10.0.0.1:7000"},
	} {
		sendSlowly(t, ends[p.from].ns, port(p.dst), "from-"+p.from, 10)
	}
	for name, s := range rx {
		got := s.drain()
		var peer string
		if name[0] == 'a' {
			peer = "from-b" + name[1:]
		} else {
			peer = "from-a" + name[1:]
		}
		if got[peer] < 5 {
			t.Errorf("%s received %v; want most of the 10 datagrams %q", name, got, peer)
		}
		for p := range got {
			if p != peer {
				t.Errorf("%s received %q: traffic crossed between VNIs", name, p)
			}
		}
	}

	// With b100's device gone, a100's traffic has nowhere to go: b200, with
	// the same address, must not see it.
	if _, err := handles["b100"].Execute([]state.Op{{Action: state.Delete, Link: links["b100"]}}); err != nil {
		t.Fatal(err)
	}
	if out := ipn(t, ends["b100"].ns, "link", "show"); strings.Contains(out, "vx0") {
		t.Fatalf("b100 still has vx0 after delete:\n%s", out)
	}
	ipn(t, ends["a100"].ns, "neigh", "flush", "dev", "vx0")
	var before, after []struct {
		Stats struct {
			RX struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	ipJSON(t, ends["b200"].ns, &before, "-s", "link", "show", "vx0")
	sendSlowly(t, ends["a100"].ns, port("10.0.0.2:7000"), "from-a100", 10)
	if got := rx["b200"].drain(); len(got) != 0 {
		t.Errorf("b200 received %v after b100 left", got)
	}
	ipJSON(t, ends["b200"].ns, &after, "-s", "link", "show", "vx0")
	if len(before) != 1 || len(after) != 1 || after[0].Stats.RX.Packets != before[0].Stats.RX.Packets {
		t.Errorf("b200's vx0 received packets after b100 left: %+v -> %+v", before, after)
	}

	for _, name := range []string{"a100", "a200", "b200"} {
		if _, err := handles[name].Execute([]state.Op{{Action: state.Delete, Link: links[name]}}); err != nil {
			t.Errorf("%s: delete: %v", name, err)
		}
	}
	for _, ns := range []string{siteA, siteB} {
		if udpListening(t, ns, 4789) {
			t.Errorf("%s keeps a UDP socket on 4789 after every vxlan is gone", ns)
		}
	}
}

// TestVXLANUnderlayHere covers the underlay in the device's own namespace:
// named "" or by the namespace's own name, the device is created there
// and its underlay device is read back by name.
func TestVXLANUnderlayHere(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "vxhere")
	ipScript(t, ns, "link add ua type veth peer name ub\naddr add 198.51.100.1/24 dev ua\nlink set ua up\nlink set ub up")
	h := openT(t, ns)
	a := vxlanLink("vx1", 101, "198.51.100.1", "198.51.100.2", "ua", "")
	b := vxlanLink("vx2", 102, "", "198.51.100.2", "ua", ns)
	b.VXLAN.Port = 0 // IANA's port, not the kernel's 8472
	c := &state.Link{Name: "vx6", Kind: "vxlan", Alias: state.LinkAliasPrefix + "vxlan",
		VXLAN: &state.VXLAN{VNI: 106, Remote: addr("2001:db8::2"), Port: 4790}}
	applied, err := h.Execute([]state.Op{{Action: state.Add, Link: a}, {Action: state.Add, Link: b}, {Action: state.Add, Link: c}})
	if err != nil || !applied[0] || !applied[1] || !applied[2] {
		t.Fatalf("Execute = %v, %v", applied, err)
	}
	for _, c := range []struct {
		name string
		want state.VXLAN
	}{
		{"vx1", *a.VXLAN},
		{"vx2", state.VXLAN{VNI: 102, Remote: addr("198.51.100.2"), Dev: "ua", Port: 4789}},
		{"vx6", *c.VXLAN},
	} {
		got := observedLink(t, h, c.name)
		if got == nil || got.VXLAN == nil || *got.VXLAN != c.want {
			t.Errorf("observed %s, want vxlan %s", js(got), js(c.want))
		}
	}
	l, err := h.LinkByName("vx1")
	if err != nil || l.VXLAN == nil || *l.VXLAN != *a.VXLAN {
		t.Errorf("LinkByName(vx1) = %s, %v", js(l), err)
	}

	// Errors name the underlay's namespace.
	bad := vxlanLink("vx3", 103, "", "198.51.100.2", "nosuch", "")
	if _, err := h.Execute([]state.Op{{Action: state.Add, Link: bad}}); err == nil || !strings.Contains(err.Error(), `device nosuch: not found`) {
		t.Errorf("missing underlay device: %v", err)
	}
	bad = vxlanLink("vx3", 103, "", "198.51.100.2", "ua", "tr-k-nosuch")
	if _, err := h.Execute([]state.Op{{Action: state.Add, Link: bad}}); err == nil || !strings.Contains(err.Error(), `"tr-k-nosuch" does not exist`) {
		t.Errorf("missing underlay namespace: %v", err)
	}
	bad = &state.Link{Name: "vx3", Kind: "vxlan", VXLAN: &state.VXLAN{Remote: addr("198.51.100.2")}}
	if _, err := h.Execute([]state.Op{{Action: state.Add, Link: bad}}); err == nil || !strings.Contains(err.Error(), "VNI") {
		t.Errorf("no VNI: %v", err)
	}
}

// TestVXLANUnderlayHost covers state.HostNamespace. The initial namespace
// has no name under /run/netns; the test stands in for it an unnamed
// namespace of its own (named only while it is set up, then kept by a
// bind mount elsewhere).
func TestVXLANUnderlayHost(t *testing.T) {
	needRoot(t)
	name := fmt.Sprintf("tr-k-vxfake-%d", os.Getpid())
	exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run() // if still named
	ipScript(t, name, "link add ua type veth peer name ub\naddr add 198.51.100.1/24 dev ua\nlink set ua up\nlink set ub up")
	file := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(filepath.Join(NetnsDir, name), file, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(file, unix.MNT_DETACH)
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", name, err, out)
	}
	defer func(p string) { hostNSPath = p }(hostNSPath)
	hostNSPath = file

	dom := newNS(t, "vxdom")
	h := openT(t, dom)
	l := vxlanLink("vx0", 100, "198.51.100.1", "198.51.100.2", "ua", state.HostNamespace)
	if _, err := h.Execute([]state.Op{{Action: state.Add, Link: l}}); err != nil {
		t.Fatal(err)
	}
	if got := observedLink(t, h, "vx0"); got == nil || got.VXLAN == nil || *got.VXLAN != *l.VXLAN {
		t.Errorf("observed %s, want vxlan %s", js(got), js(l.VXLAN))
	}
	if _, err := h.Execute([]state.Op{{Action: state.Delete, Link: l}}); err != nil {
		t.Fatal(err)
	}
}
