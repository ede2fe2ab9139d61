package bgptest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestIPv6TopLevel: the top level's speaker (running in the namespace
// tunroute is applied on, no domains) holds an IPv6 session over a veth,
// with each engine: each side takes exactly the other's /48 and refuses
// the rest; Stop leaves nothing.
func TestIPv6TopLevel(t *testing.T) {
	for _, engine := range []string{"bird", "frr"} {
		t.Run(engine, func(t *testing.T) { ipv6TopLevel(t, engine) })
	}
}

func ipv6TopLevel(t *testing.T, engine string) {
	e := newEnv(t, "v6"+engine, engine)
	a, b := e.NS("a"), e.NS("b")
	e.addNS("a", "b")
	e.ip(a, "link", "add", "p0", "type", "veth", "peer", "name", "p0", "netns", b)
	e.ip(a, "addr", "add", "2001:db8:254::1/64", "dev", "p0", "nodad")
	e.ip(b, "addr", "add", "2001:db8:254::2/64", "dev", "p0", "nodad")
	e.ip(a, "link", "set", "p0", "up")
	e.ip(b, "link", "set", "p0", "up")
	cfg := func(name string, me, other int, extra string) string {
		p := filepath.Join(e.Dir, name)
		y := fmt.Sprintf(`bgp:
  engine: %s
  asn: 6451%d
  router_id: 10.0.0.%d
  originate: ["2001:db8:%d::/48"%s]
  neighbors:
    - address: "2001:db8:254::%d"
      local: "2001:db8:254::%d"
      asn: 6451%d
      accept: ["2001:db8:%d::/48"]
`, engine, me, me, me, extra, other, me, other, other)
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// b also announces what a may not take: a's own /48's more
	// specific and a default route.
	cfgA := cfg("a.yaml", 1, 2, "")
	cfgB := cfg("b.yaml", 2, 1, `, "2001:db8:1:1::/64", "::/0"`)
	e.Tops = append(e.Tops, a, b)
	// b's export list is its originate list: it announces all three.
	e.startBGP(cfgA, a)
	e.startBGP(cfgB, b)
	want := map[string][]string{a: {"2001:db8:2::/48"}, b: {"2001:db8:1::/48"}}
	for _, ns := range []string{a, b} {
		if err := poll(30*time.Second, func() (bool, string) {
			got := e.learned6(ns)
			return slices.Equal(got, want[ns]), fmt.Sprint(got)
		}); err != nil {
			t.Errorf("%s: IPv6 routes: %v", ns, err)
		}
	}
	for _, top := range []string{a, b} {
		if err := e.bgp.StopAll(context.Background(), top); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{a, b} {
		if got := e.learned6(ns); len(got) != 0 {
			t.Errorf("%s: routes left after stop: %v", ns, got)
		}
	}
}

// learned6 lists the IPv6 destinations the engine installed in ns.
func (e *env) learned6(ns string) []string {
	e.t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-6", "route", "show", "table", "all", "proto", e.proto).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ip -6 route: %v %s", err, out)
	}
	var rs []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		e.t.Fatalf("ip -j -6 route: %v: %s", err, out)
	}
	var ss []string
	for _, r := range rs {
		ss = append(ss, r.Dst)
	}
	slices.Sort(ss)
	return ss
}
