package vmtest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/labtest"
)

func swanctlConf(me, peer, myID, peerID, localTS, remoteTS, updown string) string {
	up := ""
	if updown != "" {
		up = "\n      updown = " + updown
	}
	return fmt.Sprintf(`connections {
  site {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes128-sha256-modp2048
    local {
      auth = psk
      id = %s
    }
    remote {
      auth = psk
      id = %s
    }
    children {
      site {
        local_ts = %s
        remote_ts = %s
        if_id_in = 42
        if_id_out = 42
        esp_proposals = aes128-sha256%s
      }
    }
  }
}
secrets {
  ike-1 {
    id-1 = a@trdev
    id-2 = b@trdev
    secret = trdev-vm-psk
  }
}
`, me, peer, myID, peerID, localTS, remoteTS, up)
}

// TestStrongSwanXFRM: route-based IPsec with the kernel's XFRM. Both
// sides declare an xfrm interface (if_id 42) in their config; charon
// negotiates SAs and policies with that if_id and, on the client, calls
// `tunroute hook strongswan` as its updown: the hook finds the device by
// PLUTO_IF_ID_OUT and routes the peer's selector through it. A datagram
// crosses the tunnel; when the SA is terminated the route goes.
func TestStrongSwanXFRM(t *testing.T) {
	inVM(t)
	bin := os.Getenv("TUNROUTE_TEST_BIN")
	if bin == "" {
		t.Skip("needs TUNROUTE_TEST_BIN (scripts/vmtest.sh builds it)")
	}
	for _, p := range []string{labtest.CharonBin, "/usr/sbin/swanctl"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s (strongswan-charon, strongswan-swanctl)", p)
		}
	}
	start := time.Now()
	a, b := newNS(t, "ss-a"), newNS(t, "ss-b")
	cable(t, a, b, "10.9.0.1/24", "10.9.0.2/24")
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	cfgA := writeConfig(t, `devices:
  - {name: ipsec42, type: xfrm, if_id: 42, dev: eth0, address: 10.70.1.1/24}
vpns:
  - {name: site, type: strongswan, servers: [10.9.0.2]}
identities:
  - {name: site, vpn: site, device: ipsec42, address: 10.70.1.1, gateway: none}
`, nil)
	cfgB := writeConfig(t, `devices:
  - {name: ipsec42, type: xfrm, if_id: 42, dev: eth0, address: 10.70.2.1/24}
identities:
  - {name: site, device: ipsec42, address: 10.70.2.1, gateway: none}
routes:
  - {to: 10.70.1.0/24, via: site}
`, nil)
	mustRun := func(argv ...string) string {
		cmd := exec.Command(argv[0], argv[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return string(out)
	}
	mustRun(bin, "apply", "-c", cfgA, "--netns", a, "--run-dir", run)
	apply(t, b, cfgB)

	updown := filepath.Join(dir, "updown.sh")
	os.WriteFile(updown, []byte(fmt.Sprintf("#!/bin/sh\nexec %s hook strongswan -c %s --run-dir %s >> %s/hook.log 2>&1\n", bin, cfgA, run, dir)), 0o755)
	labtest.StartCharon(t, b, filepath.Join(dir, "b"), labtest.CharonConfig{}, swanctlConf("10.9.0.2", "10.9.0.1", "b@trdev", "a@trdev", "10.70.2.0/24", "10.70.1.0/24", ""))
	ca := labtest.StartCharon(t, a, filepath.Join(dir, "a"), labtest.CharonConfig{}, swanctlConf("10.9.0.1", "10.9.0.2", "a@trdev", "b@trdev", "10.70.1.0/24", "10.70.2.0/24", updown))
	t.Logf("%s: both charons up", time.Since(start).Round(time.Millisecond))
	ca.Swanctl(t, "--initiate", "--child", "site", "--timeout", "60")
	t.Logf("%s: initiated", time.Since(start).Round(time.Millisecond))

	hookLog := func() string { s, _ := os.ReadFile(filepath.Join(dir, "hook.log")); return string(s) }
	want := "vpn site (strongswan up-client 10.70.1.0/24=10.70.2.0/24) on ipsec42"
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(hookLog(), want) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(hookLog(), want) {
		t.Fatalf("the hook did not bring the vpn up on ipsec42:\n%s", hookLog())
	}
	t.Logf("%s: the hook ran", time.Since(start).Round(time.Millisecond))
	// The hook's apply finishes after its first line.
	var r string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if r = mustRun("ip", "-n", a, "route", "show", "10.70.2.0/24"); strings.Contains(r, "dev ipsec42") {
			break
		}
	}
	if !strings.Contains(r, "dev ipsec42") || !strings.Contains(r, "proto 116") {
		t.Fatalf("the peer's selector is not routed through ipsec42: %q\nhook:\n%s", r, hookLog())
	}
	t.Logf("%s: routed", time.Since(start).Round(time.Millisecond))
	if st := mustRun("ip", "-n", a, "xfrm", "state"); !strings.Contains(st, "if_id 0x2a") {
		t.Fatalf("no SA with if_id 42:\n%s", st)
	}
	from, err := udpThrough(t, a, netip.MustParseAddr("10.70.1.1"), b, netip.MustParseAddrPort("10.70.2.1:7000"), 10*time.Second)
	if err != nil || from != netip.MustParseAddr("10.70.1.1") {
		t.Fatalf("through the xfrm interface: %v (from %s)\nhook:\n%s", err, from, hookLog())
	}
	if l := observedLink(t, a, "ipsec42"); l == nil || l.Tunnel == nil || l.Tunnel.IfID != 42 {
		t.Fatalf("ipsec42: %+v", l)
	}

	t.Logf("%s: traffic crossed", time.Since(start).Round(time.Millisecond))
	ca.Swanctl(t, "--terminate", "--ike", "site", "--timeout", "60")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if r = mustRun("ip", "-n", a, "route", "show", "10.70.2.0/24"); !strings.Contains(r, "ipsec42") {
			break
		}
	}
	if strings.Contains(r, "ipsec42") {
		t.Fatalf("the route stayed after the SA went: %q\nhook:\n%s", r, hookLog())
	}
	t.Logf("%s: withdrawn", time.Since(start).Round(time.Millisecond))
}
