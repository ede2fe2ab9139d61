package compile

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// TestSystemFirstApply: a domain's identity on a device that is not there
// yet compiles on the first apply as on the next ones: a pipe end (its
// address and connected route are the config's) and an interface moved
// in from the top (its addresses and connected routes go with it).
func TestSystemFirstApply(t *testing.T) {
	const yaml = `
domains:
  - name: dom
    interfaces: [tun9]
    identities:
      - {name: pipe, device: p1, address: 10.253.1.2, gateway: 10.253.1.1}
      - {name: vpn, device: tun9, gateway: 10.99.0.1}
    routes:
      - {to: 10.128.0.0/16, via: pipe}
      - {to: 10.99.0.0/16, via: vpn}
pipes:
  - name: p1
    a: {domain: host, address: [10.253.1.1/24]}
    b: {domain: dom, address: [10.253.1.2/24]}
`
	cfg, err := config.Parse([]byte(yaml), "test.yaml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	top := labClient()
	top.Namespace = "top"
	top.Links = append(top.Links, state.Link{Index: 9, Name: "tun9", Kind: "tun", Up: true, Carrier: true})
	top.Addrs = append(top.Addrs, state.Addr{Dev: "tun9", Index: 9, Prefix: netip.MustParsePrefix("10.99.0.2/30"), Scope: state.ScopeUniverse})
	top.Routes = append(top.Routes, state.Route{Table: 254, Type: state.RouteUnicast, Dst: netip.MustParsePrefix("10.99.0.0/30"), Protocol: 2,
		Scope: state.ScopeLink, PrefSrc: netip.MustParseAddr("10.99.0.2"), Nexthops: []state.Nexthop{{Dev: "tun9"}}})
	sys, err := CompileSystem(cfg, "top", Observed{"top": top}, nil)
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	got := strings.Join(rendered(t, sys.Domains[1].Result.State), "\n")
	for _, want := range []string{
		"route 10.253.1.0/24 dev p1 table 1000 scope link src 10.253.1.2",
		"route default via 10.253.1.1 dev p1 table 1000 src 10.253.1.2",
		"route default via 10.99.0.1 dev tun9 table 1001 src 10.99.0.2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the domain lacks %q:\n%s", want, got)
		}
	}
}
