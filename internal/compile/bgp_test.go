package compile

import (
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/facts"
)

// The kill switch lets through exactly the declared BGP sessions.
func TestKillSwitchBGPSessions(t *testing.T) {
	yaml := vpnConfig + `bgp:
  asn: 64500
  router_id: 10.1.0.2
  bfd: true
  neighbors:
    - address: 10.1.0.1
      local: 10.1.0.2
      asn: 64501
      accept: [10.7.0.0/16]
    - address: "2001:db8:1::1"
      asn: 64502
      accept: ["2001:db8:7::/48"]
`
	res := compileWith(t, yaml, labClient(), map[string]*facts.VPN{"work": labVPN()})
	fw := firewallText(res.State.Firewall)
	out, fwd, _ := strings.Cut(fw, "chain killswitch_forward")
	for _, want := range []string{
		`meta nfproto ipv4 ip saddr 10.1.0.2 ip daddr 10.1.0.1 meta l4proto tcp th dport 179 accept "BGP session peer_10_1_0_1"`,
		`meta nfproto ipv4 ip saddr 10.1.0.2 ip daddr 10.1.0.1 meta l4proto tcp th sport 179 accept "BGP session peer_10_1_0_1"`,
		`meta nfproto ipv4 ip saddr 10.1.0.2 ip daddr 10.1.0.1 meta l4proto udp th dport 3784 accept "BFD of BGP session peer_10_1_0_1"`,
		`meta nfproto ipv6 ip6 daddr 2001:db8:1::1 meta l4proto tcp th dport 179 accept "BGP session peer_2001_db8_1__1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("killswitch_postrouting lacks\n  %s\nin:\n%s", want, fw)
		}
	}
	if n := strings.Count(fw, "179"); n != 4 {
		t.Errorf("%d rules name port 179, want 4 (two per session, output only):\n%s", n, fw)
	}
	if strings.Contains(fwd, "BGP") {
		t.Errorf("BGP sessions are local traffic; nothing in the forward chain:\n%s", fwd)
	}
	// The exceptions come before the final drop.
	if strings.Index(out, "BGP session") > strings.Index(out, "counter drop \"kill switch") {
		t.Errorf("BGP exceptions after the drop:\n%s", out)
	}
}
