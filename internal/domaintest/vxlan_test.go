package domaintest

import (
	"strings"
	"testing"
)

// TestVXLANSites: two sites (two hosts, each a namespace tunroute runs
// on) joined by one underlay link, each with domains red and blue; a
// vxlan device per domain (VNI 100 for red, 200 for blue), created from
// the host where the underlay is and placed in the domain, carries each
// domain to its twin at the other site. Both VNIs use the same overlay
// addresses: a process in each domain reaches its own twin (which
// answers with its name), and nothing of the other colour.
func TestVXLANSites(t *testing.T) {
	e := newEnv(t, "vx")
	siteA, siteB := e.NS("a"), e.NS("b")
	e.addNS("a", "b")
	e.veth(siteA, "ul0", []string{"10.77.0.1/24"}, siteB, "ul0", []string{"10.77.0.2/24"})
	cfgA := e.configAs("site-a.yaml", "vxlan-site.yaml", map[string]any{"Site": "a", "Me": 1, "Local": "10.77.0.1", "Remote": "10.77.0.2"})
	cfgB := e.configAs("site-b.yaml", "vxlan-site.yaml", map[string]any{"Site": "b", "Me": 2, "Local": "10.77.0.2", "Remote": "10.77.0.1"})
	e.apply(cfgA, siteA)
	e.apply(cfgB, siteB)
	var all []string
	for _, site := range []string{"a", "b"} {
		for _, c := range []string{"red", "blue"} {
			d := e.NS(site + "-" + c)
			all = append(all, d)
			e.serve(d, site+"-"+c, probePort)
			want := map[string]string{"red": "lo vx100", "blue": "lo vx200"}[c]
			if got := strings.Join(e.links(d), " "); got != want {
				t.Errorf("links in %s: %s, want %s", d, got, want)
			}
		}
	}
	for _, site := range []string{siteA, siteB} {
		if got := strings.Join(e.links(site), " "); got != "lo ul0" {
			t.Errorf("links in the host %s: %s, want lo ul0 (the vxlan devices are in the domains)", site, got)
		}
	}
	e.waitLinks(append(all, siteA, siteB)...)

	for _, c := range []struct{ from, to, want string }{
		{"a-red", "10.100.0.2:7000", "b-red 10.100.0.1:"},
		{"a-blue", "10.100.0.2:7000", "b-blue 10.100.0.1:"},
		{"b-red", "10.100.0.1:7000", "a-red 10.100.0.2:"},
		{"b-blue", "10.100.0.1:7000", "a-blue 10.100.0.2:"},
		{"a-red", "[2001:db8:100::2]:7000", "b-red [2001:db8:100::1]:"},
		{"a-blue", "[2001:db8:100::2]:7000", "b-blue [2001:db8:100::1]:"},
		{"a-blue", "10.100.0.22:7000", "b-blue 10.100.0.1:"},
	} {
		out, code := e.exec(e.NS(c.from), nil, "tcp", e.helper, c.to)
		if code != 0 || !strings.HasPrefix(out, c.want) {
			t.Errorf("tunroute exec %s -- tcp %s: exit %d, %q; want %q...", c.from, c.to, code, out, c.want)
		}
	}
	reach(t, e.NS("a-red"), []target{{Addr: mustAddr("10.100.0.2")}, {Addr: mustAddr("2001:db8:100::2")}}, probePort)
	// Blue's own address at site b is not on red's overlay.
	unreachable(t, e.NS("a-red"), []target{{Addr: mustAddr("10.100.0.22")}}, probePort)
	reach(t, e.NS("a-blue"), []target{{Addr: mustAddr("10.100.0.22")}}, probePort)
}
