package compile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// A full-tunnel WireGuard device compiles to wg-quick's routing: the
// table's default routes, the suppress and not-fwmark rules (the mark
// defaulting to the table), the guard, and the kill switch's tunnel and
// endpoint.
func TestWireGuardFullTunnelCompile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "wg.key"), []byte("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"), 0o600)
	src := `devices:
  - name: wg0
    type: wireguard
    private_key_file: wg.key
    address: [10.30.0.2/24, "2001:db8:30::2/64"]
    table: auto
    peers:
      - {public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=, endpoint: "198.51.100.2:51820", allowed_ips: [0.0.0.0/0, "::/0", 10.99.0.0/16]}
  - {name: wg1, type: wireguard, private_key_file: wg.key, userspace: true}
killswitch: {}
`
	cfg, err := config.Parse([]byte(src), filepath.Join(dir, "t.yaml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compile(cfg, &state.State{Links: []state.Link{{Name: "lo", Index: 1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range res.State.Routes {
		lines = append(lines, "route "+r.String())
	}
	for _, r := range res.State.Rules {
		lines = append(lines, "rule "+r.String())
	}
	for _, c := range res.State.Firewall.Chains {
		for _, r := range c.Rules {
			lines = append(lines, c.Name+": "+r.String())
		}
	}
	all := strings.Join(lines, "\n")
	expectContains(t, all,
		"route default dev wg0 table 1000 scope link",
		"route default (::/0) dev wg0 table 1000",
		"route 10.99.0.0/16 dev wg0 table main scope link",
		"rule pref 32000 from all lookup main suppress_prefixlength 0",
		"rule pref 32001 not from all fwmark 0x3e8 lookup 1000",
		"rule -6 pref 32001 not from all fwmark 0x3e8 lookup 1000",
		`wireguard_guard: meta nfproto ipv4 iifname != { "wg0", "lo" } ip daddr 10.30.0.2 counter drop`,
		`wireguard_guard: meta nfproto ipv6 iifname != { "wg0", "lo" } ip6 daddr 2001:db8:30::2 counter drop`,
		`killswitch_postrouting: oifname "wg0" accept`,
		`killswitch_postrouting: meta nfproto ipv4 ip daddr 198.51.100.2 meta l4proto udp th dport 51820 accept`,
	)
	for _, l := range res.State.Links {
		if l.Name == "wg0" && l.WireGuard.FwMark != 1000 {
			t.Errorf("wg0's fwmark is %d, want the table's 1000", l.WireGuard.FwMark)
		}
		if l.Name == "wg1" && (!l.Userspace || l.Owned()) {
			t.Errorf("wg1: %+v", l)
		}
	}
	if notes := strings.Join(res.Notes, "\n"); !strings.Contains(notes, "wg1 does not exist") {
		t.Errorf("notes: %s", notes)
	}
}
