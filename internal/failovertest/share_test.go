package failovertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/testns"
)

const shareConfig = `
identities:
  - name: isp1
    device: eth0
    gateway: 10.1.0.1
  - name: isp2
    device: eth1
    gateway: 10.2.0.1
groups:
  - name: shared
    balance: {isp1: 3, isp2: 1}
routes:
  - to: 198.51.100.0/24
    via: shared
killswitch:
  allow:
    - to: 198.51.100.0/24
`

// TestLoadSharing: a balance group {isp1: 3, isp2: 1} over 1,000 TCP
// connections. The user's side of the setup, as the README says: a per-
// flow (layer 4) multipath hash, and masquerade on each uplink (each ISP
// accepts only its own source addresses). Counts the SYNs each ISP
// forwards.
func TestLoadSharing(t *testing.T) {
	buildLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testns.Cmd(t, "ip", "netns", "exec", nsHost, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")
	testns.Cmd(t, "ip", "netns", "exec", nsHost, "nft", "add table ip labnat; add chain ip labnat post { type nat hook postrouting priority 100; }; add rule ip labnat post oifname { eth0, eth1 } masquerade")
	for _, ns := range []string{nsISP1, nsISP2} {
		testns.Cmd(t, "ip", "netns", "exec", ns, "nft", "add table inet fo; add chain inet fo fw { type filter hook forward priority 0; }; add rule inet fo fw tcp dport 8000 tcp flags & (syn | ack) == syn counter")
	}
	d := startDaemonWith(t, ctx, shareConfig)
	_ = d
	acceptAndCloseIn(t, nsNet, "198.51.100.10:8000")
	const flows = 1000
	failed := 0
	dialIn(t, nsHost, func() {
		for i := 0; i < flows; i++ {
			c, err := net.DialTimeout("tcp", "198.51.100.10:8000", 2*time.Second)
			if err != nil {
				failed++
				continue
			}
			c.Close()
		}
	})
	if failed > 0 {
		t.Errorf("%d of %d connections failed", failed, flows)
	}
	count := func(ns string) int {
		out := testns.Cmd(t, "ip", "netns", "exec", ns, "nft", "list chain inet fo fw")
		m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
		n, _ := strconv.Atoi(m[1])
		return n
	}
	n1, n2 := count(nsISP1), count(nsISP2)
	share := float64(n1) / float64(n1+n2)
	fmt.Printf("load sharing 3:1 over %d TCP flows: %d through ISP 1, %d through ISP 2 (%.1f%% / %.1f%%, want 75%% / 25%%)\n",
		flows, n1, n2, 100*share, 100*(1-share))
	if n1+n2 < flows {
		t.Errorf("%d SYNs counted for %d flows", n1+n2, flows)
	}
	if share < 0.675 || share > 0.825 {
		t.Errorf("ISP 1 carried %.1f%% of the flows, want within 10%% of 75%%", 100*share)
	}
}

// TestMultipathHashReported: in the namespace tunroute runs in, a
// balance group's hash policy is reported, never set: `tunroute status`
// and `plan` say the kernel hashes L3 where the config wants L4 and how
// to set it, and say nothing once it is set; the plan has no sysctl step.
func TestMultipathHashReported(t *testing.T) {
	buildLab(t)
	bin, err := testns.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tunroute.yaml")
	if err := os.WriteFile(cfg, []byte(shareConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	// plan exits 2 when it has changes to make: only the output counts.
	tunroute := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--netns", nsHost, "--run-dir", filepath.Join(dir, "run"), "-c", cfg)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 2) {
			t.Fatalf("tunroute %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	const hint = "set it with `sysctl -w net.ipv4.fib_multipath_hash_policy=1`"
	for _, cmd := range []string{"status", "plan"} {
		if out := tunroute(cmd); !strings.Contains(out, hint) {
			t.Errorf("%s with the kernel hashing L3 lacks %q:\n%s", cmd, hint, out)
		}
	}
	if out := tunroute("plan"); strings.Contains(out, "~ sysctl") {
		t.Errorf("the plan changes a sysctl of the namespace tunroute runs in:\n%s", out)
	}
	testns.Cmd(t, "ip", "netns", "exec", nsHost, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1")
	if out := tunroute("status"); strings.Contains(out, "multipath_hash_policy") {
		t.Errorf("status with the kernel hashing L4 still speaks of it:\n%s", out)
	}
	if got := strings.TrimSpace(testns.Cmd(t, "ip", "netns", "exec", nsHost, "sysctl", "-n", "net.ipv4.fib_multipath_hash_policy")); got != "1" {
		t.Errorf("policy %s", got)
	}
}
