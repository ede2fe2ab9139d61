package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// routesConfig is an identity plus n main-table routes through it.
func routesConfig(n int) string {
	var b strings.Builder
	b.WriteString("identities:\n  - {name: vpn, device: wg0, gateway: none}\nroutes:\n  - via: vpn\n    to:\n")
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)})
		fmt.Fprintf(&b, "      - %s\n", netip.PrefixFrom(a, 32))
	}
	return b.String()
}

// BenchmarkRoutes10k prints the core pipeline's performance figures:
// the time to plan and apply 10,000 routes, a no-change plan, and down.
// Run as root:
//
//	go test -run x -bench Routes10k ./cmd/tunroute/
func BenchmarkRoutes10k(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	ns := fmt.Sprintf("tr-bench-%d", os.Getpid())
	setup := [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "add", "wg0", "type", "veth", "peer", "name", "wgpeer"},
		{"-n", ns, "link", "set", "wg0", "up"}, {"-n", ns, "link", "set", "wgpeer", "up"},
		{"-n", ns, "addr", "add", "10.30.0.2/24", "dev", "wg0"},
	}
	exec.Command("ip", "netns", "del", ns).Run()
	for _, c := range setup {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			b.Fatalf("ip %v: %v %s", c, err, out)
		}
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	cfg := b.TempDir() + "/routes.yaml"
	if err := os.WriteFile(cfg, []byte(routesConfig(10000)), 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(args ...string) time.Duration {
		start := time.Now()
		root := newRootCmd()
		root.SetOut(&strings.Builder{})
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			if ee, ok := err.(*exitError); !ok || ee.code != 2 {
				b.Fatalf("%v: %v", args, err)
			}
		}
		return time.Since(start)
	}
	var plan, apply, noop, down time.Duration
	for i := 0; i < b.N; i++ {
		plan += run("plan", "-c", cfg, "--netns", ns)
		apply += run("apply", "-c", cfg, "--netns", ns)
		noop += run("plan", "-c", cfg, "--netns", ns)
		down += run("down", "--netns", ns)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64(plan/n)/1e6, "ms-plan")
	b.ReportMetric(float64(apply/n)/1e6, "ms-apply")
	b.ReportMetric(float64(noop/n)/1e6, "ms-noop-plan")
	b.ReportMetric(float64(down/n)/1e6, "ms-down")
}
