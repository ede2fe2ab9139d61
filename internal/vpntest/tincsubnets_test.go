package vpntest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/labtest"
)

// TestTincSubnets runs tinc 1.0 with the subnet-up and subnet-down scripts
// too. The client node owns the LAN's subnet (tinc runs subnet-up for it
// with NODE = the client itself), the server owns a documentation prefix
// and the LAN's subnet too (a pushed route the LAN's connected route
// already holds). Every hook must succeed, the server's other subnet must
// be routed into the tunnel, the LAN must stay on the LAN, an admin's
// apply must succeed. The config also sends a cgroup around the tunnel
// with the kill switch's forward guard on (which once failed to apply
// with "operation not supported"), and the cgroup's traffic must leave
// in clear while the rest goes through the tunnel.
//
// Not parallel: tinc 1.0 with one-second ping timeouts drops and remakes
// its connection when the other labs' hook fuzzing loads the machine.
func TestTincSubnets(t *testing.T) {
	pushed := netip.MustParsePrefix("192.0.2.0/24")
	lan := netip.MustParsePrefix("10.1.0.0/24")
	k := *tincKind
	k.short = "tsub"
	k.start = func(w *world) (daemons, error) {
		tc, err := labtest.SetupTinc(w.lab, labtest.TincConfig{
			Dir:           w.dir,
			Hook:          func(verb string) string { return w.hookCommand("tinc", verb) },
			SubnetScripts: true,
			ClientSubnets: []netip.Prefix{lan},
			ServerSubnets: []netip.Prefix{pushed, lan},
		})
		if err != nil {
			return nil, err
		}
		return &tinc{tc}, nil
	}
	w := newWorld(t, &k)
	cg := fmt.Sprintf("tr-ks-%d", os.Getpid())
	cgDir := filepath.Join("/sys/fs/cgroup/unified", cg)
	if err := os.Mkdir(cgDir, 0o755); err != nil {
		t.Skipf("needs a cgroup v2 hierarchy at /sys/fs/cgroup/unified: %v", err)
	}
	t.Cleanup(func() { os.Remove(cgDir) })
	cfg := w.example + selectBlock(k.tunnelID) + "  - {cgroup: " + cg + ", proto: tcp, dport: 8080, via: outside}\n"
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w.apply(t, w.cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.vpn.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.vpn.StartClient(ctx, true); err != nil {
		t.Fatal(err)
	}
	tc := w.vpn.(*tinc)
	// The server's two subnets and the client's own: three subnet-up.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(readFile(tc.EventFile()), "subnet-up") < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("tinc ran subnet-up fewer than 3 times:\n%s", readFile(tc.EventFile()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.settle()
	w.ensureUp(t)
	events := readFile(tc.EventFile())
	t.Logf("hook events:\n%s", events)
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		if !strings.HasSuffix(line, " 0") {
			t.Errorf("a hook failed: %q\n%s", line, readFile(tc.HookLog()))
		}
	}
	if got := ip(t, w.client, "route", "show", pushed.String()); !strings.Contains(got, "dev "+labtest.TincClientDev) {
		t.Errorf("the server's subnet %s is not routed into the tunnel: %q", pushed, got)
	}
	if got := ip(t, w.client, "route", "show", lan.String()); strings.Contains(got, labtest.TincClientDev) || !strings.Contains(got, "dev eth0") {
		t.Errorf("the LAN %s must stay on eth0: %q", lan, got)
	}
	if out, code := w.tr(t, "--run-dir", w.runDir, "apply", "-c", w.cfg, "--netns", w.client); code != 0 {
		t.Errorf("an admin's apply after the subnets came up: exit %d\n%s", code, out)
	}

	// The cgroup's TCP to inet's echo leaves in clear from the uplink's
	// address; the same from outside the cgroup goes through the tunnel.
	script := fmt.Sprintf(`import socket
s = socket.create_connection(("%s", %d), timeout=2)
print(s.recv(200).decode().strip())`, lab.InetEth4.Addr(), echoPort)
	for _, c := range []struct {
		inCgroup bool
		want     netip.Addr
	}{{true, lab.ClientEth4.Addr()}, {false, lab.ServerEth4.Addr()}} {
		sh := "exec python3 -c \"$0\""
		if c.inCgroup {
			sh = "echo $$ > " + filepath.Join(cgDir, "cgroup.procs") + " && " + sh
		}
		out, code, err := run(w.client, []string{"sh", "-c", sh, script}, nil)
		if err != nil || code != 0 {
			t.Errorf("in cgroup %v: exit %d %v\n%s", c.inCgroup, code, err, out)
			continue
		}
		if !strings.Contains(out, " "+c.want.String()+":") {
			t.Errorf("in cgroup %v: inet saw %q, want %s", c.inCgroup, strings.TrimSpace(out), c.want)
		} else {
			t.Logf("in cgroup %v: inet saw %s", c.inCgroup, strings.TrimSpace(out))
		}
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
