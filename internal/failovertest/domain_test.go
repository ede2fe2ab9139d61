package failovertest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// nsDomain is the routing domain tunroute makes in the domain test.
const nsDomain = "tr-fo2-d"

// domainConfig moves both uplinks into a routing domain with the failover
// group: the domain's identities must be probed inside the domain.
const domainConfig = `
domains:
  - name: ` + nsDomain + `
    interfaces: [eth0, eth1]
    identities:
      - name: isp1
        device: eth0
        gateway: 10.1.0.1
        health: {targets: [icmp 203.0.113.1], interval: 1s, timeout: 300ms, down: 3, up: 5}
      - name: isp2
        device: eth1
        gateway: 10.2.0.1
        health: {targets: [icmp 203.0.113.1], interval: 1s, timeout: 300ms, down: 3, up: 5}
    groups:
      - name: uplinks
        failover: [isp1, isp2]
    routes:
      - to: 198.51.100.0/24
        via: uplinks
`

// TestGroupInDomain: a failover group inside a routing domain is probed
// in the domain's namespace (where its devices are; the top namespace no
// longer has them), its verdicts go by DOMAIN/IDENTITY, and when ISP 1
// drops everything the domain's route moves to ISP 2.
func TestGroupInDomain(t *testing.T) {
	buildLab(t)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsDomain).Run() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := startDaemonWith(t, ctx, domainConfig)
	route := func() string {
		out, _ := exec.Command("ip", "-n", nsDomain, "route", "show", "198.51.100.0/24").CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		h := d.prober.Health()
		if h[nsDomain+"/isp1"] && h[nsDomain+"/isp2"] && strings.Contains(route(), "dev eth0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the domain's uplinks not judged up (or the route not on eth0: %q): %+v", route(), d.prober.Status())
		}
	}
	for _, p := range d.currentSystemProbes(t) {
		if p.Netns != nsDomain || !strings.HasPrefix(p.Identity, nsDomain+"/") {
			t.Errorf("probe %s runs in %q, want the domain %s", p.Identity, p.Netns, nsDomain)
		}
	}
	cut := time.Now()
	runAll(t, dropRule.cut)
	defer func() {
		for _, c := range dropRule.heal {
			exec.Command(c[0], c[1:]...).Run()
		}
	}()
	for deadline := cut.Add(15 * time.Second); !strings.Contains(route(), "dev eth1"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the domain's route stays %q 15 s after ISP 1 died; prober %+v", route(), d.prober.Status())
		}
	}
	fmt.Printf("group in a routing domain: probed in %s; ISP 1 drops everything, the domain's route through ISP 2 %.2fs after the cut\n",
		nsDomain, time.Since(cut).Seconds())
}
