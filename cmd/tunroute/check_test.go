package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

const labSnapshot = "../../internal/verify/testdata/lab-client.json"

// wideConfig lets everything out in clear (an allow meant for the LAN)
// and sends uid 1001 around the tunnel against its own assertion.
const wideConfig = `
vpns:
  - {name: work, type: openvpn, servers: ["198.51.100.2:1194/udp"]}
identities:
  - {name: inside, vpn: work}
  - {name: outside, device: eth0}
redirect: {via: inside}
select:
  - {uid: 1001, via: outside}
killswitch:
  allow: [{to: 0.0.0.0/0}]
assert:
  - {uid: 1001, only_via: [inside]}
`

// runDirWithWork is a run directory where the VPN work's hook reported
// wg0 up.
func runDirWithWork(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "facts", "host"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := `{"name":"work","type":"openvpn","device":"wg0","addrs":["10.30.0.2/24"],"gateway4":"10.30.0.1",` +
		`"servers":[{"addr":"198.51.100.2","port":1194,"proto":"udp"}],"updated":"2026-12-02T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dir, "facts", "host", "work.json"), []byte(f), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckHolds(t *testing.T) {
	out, code := tunroute(t, "check", "-c", "../../examples/full-tunnel-lan.yaml", "--state", labSnapshot, "--run-dir", t.TempDir())
	if code != 0 || strings.Contains(out, "BROKEN") || !strings.Contains(out, "holds   nothing leaves in clear unless the policy allows it") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestCheckBroken(t *testing.T) {
	cfg := writeConfig(t, wideConfig)
	run := runDirWithWork(t)
	out, code := tunroute(t, "check", "-c", cfg, "--state", labSnapshot, "--run-dir", run)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	for _, want := range []string{
		"2 states of the tunnels (work up; work down)",
		"BROKEN  what goes through a tunnel never falls back to clear when tunnels go down",
		"with work down: ICMP echo from (unbound) to 1.0.0.1, sent by uid 1000",
		"tunroute explain -c " + cfg + " to 1.0.0.1 ipproto icmp uid 1000   # as it would be with work down",
		"BROKEN  uid 1001 only via inside (" + cfg + ":13:6)",
		"with work up: ICMP echo from (unbound) to 1.0.0.1, sent by uid 1001",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	out, code = tunroute(t, "check", "-c", cfg, "--state", labSnapshot, "--run-dir", run, "--json")
	var rep struct {
		Scenarios  []string `json:"scenarios"`
		Properties []struct {
			Name       string `json:"name"`
			Holds      bool   `json:"holds"`
			Violations []struct {
				Scenario, Packet, Explain string
			} `json:"violations"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 2 {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	broken := 0
	for _, p := range rep.Properties {
		if !p.Holds {
			broken++
			if len(p.Violations) == 0 || !strings.HasPrefix(p.Violations[0].Explain, "tunroute explain") {
				t.Errorf("%s: %+v", p.Name, p.Violations)
			}
		}
	}
	if broken != 2 || len(rep.Scenarios) != 2 {
		t.Errorf("%d broken in %v", broken, rep.Scenarios)
	}
}

func TestCheckDiff(t *testing.T) {
	old := "../../examples/full-tunnel-lan.yaml"
	out, code := tunroute(t, "check", "--diff", old, old, "--state", labSnapshot, "--run-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, ": 0 of ") {
		t.Fatalf("same config: exit %d:\n%s", code, out)
	}
	data, err := os.ReadFile(old)
	if err != nil {
		t.Fatal(err)
	}
	wider := writeConfig(t, strings.Replace(string(data), "- to: [10.1.0.0/24, 192.168.0.0/16]", "- to: [10.1.0.0/24, 192.168.0.0/16, 198.51.100.0/24]", 1))
	out, code = tunroute(t, "check", "--diff", old, wider, "--state", labSnapshot, "--run-dir", t.TempDir())
	if code != 2 || !strings.Contains(out, "dropped by the firewall (kill switch: not in a tunnel, not allowed in clear)  ->  leaves by eth0 in clear") ||
		!strings.Contains(out, "to 198.51.100.") {
		t.Fatalf("wider allow: exit %d:\n%s", code, out)
	}
}

func TestCheckSnapshotClasses(t *testing.T) {
	out, code := tunroute(t, "check", "--state", labSnapshot)
	if code != 0 || !strings.Contains(out, "IPv4 sent by this host: leaves by eth0 in clear") ||
		!strings.Contains(out, "tunroute explain --state "+labSnapshot) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--diff", "a.yaml"}, "check --diff: give the old and the new config"},
		{[]string{"check", "extra"}, `check: unexpected argument "extra"`},
		{[]string{"check", "--state", labSnapshot, "--netns", "x"}, "check: --state checks a snapshot; it cannot go with --netns"},
	} {
		out, code := tunroute(t, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d: %s", tc.args, code, out)
		}
	}
}

// TestCheckLiveConfirms: on a live namespace with the config applied,
// the counterexample of the state the VPNs are in is confirmed by the
// kernel's own route lookup.
func TestCheckLiveConfirms(t *testing.T) {
	ns := clientNS(t, "check")
	cfg := writeConfig(t, `
identities:
  - {name: inside, device: wg0, gateway: none}
  - {name: outside, device: eth0}
redirect: {via: inside, servers: [198.51.100.2]}
select:
  - {uid: 1001, via: outside}
killswitch:
  tunnels: [inside]
assert:
  - {uid: 1001, only_via: [inside]}
`)
	run := t.TempDir()
	// apply --check refuses the config: exit 3, nothing changed.
	before := dump(t, ns)
	if out, code := tunroute(t, "apply", "--check", "-c", cfg, "--netns", ns, "--run-dir", run); code != 3 {
		t.Fatalf("apply --check of a config whose assertion fails: exit %d, want 3:\n%s", code, out)
	}
	if after := dump(t, ns); after != before {
		t.Fatalf("apply --check changed the namespace")
	}
	if out, code := tunroute(t, "apply", "-c", cfg, "--netns", ns, "--run-dir", run); code != 0 {
		t.Fatalf("apply: exit %d:\n%s", code, out)
	}
	out, code := tunroute(t, "check", "-c", cfg, "--netns", ns, "--run-dir", run)
	if code != 2 || !strings.Contains(out, "BROKEN  uid 1001 only via inside") ||
		!strings.Contains(out, "confirmed: the kernel routes it the same way (leaves by eth0 in clear)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestCheckDomainPipeReplayed: the counterexample check finds for a pipe
// without an allow list is replayed for real: the hostile domain's ping
// reaches the private domain; with the allow list check proves the
// assertion, and the same ping gets no answer.
func TestCheckDomainPipeReplayed(t *testing.T) {
	top := clientNS(t, "ckdom")
	ipCmd(t, "netns", "exec", top, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	priv, hostile := fmt.Sprintf("tr-ckp-%d", os.Getpid()), fmt.Sprintf("tr-ckh-%d", os.Getpid())
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", priv).Run()
		exec.Command("ip", "netns", "del", hostile).Run()
	})
	cfgText := `
domains:
  - name: ` + priv + `
  - name: ` + hostile + `
pipes:
  - name: ckpriv0
    a: {domain: host, address: 10.250.2.1/30}
    b: {domain: ` + priv + `, address: 10.250.2.2/30, routes: [10.250.0.0/16]}
  - name: ckhost0
    a: {domain: host, address: 10.250.3.1/30}
    b: {domain: ` + hostile + `, address: 10.250.3.2/30, routes: [0.0.0.0/0]}
%s
assert:
  - {from_domain: ` + hostile + `, to_domain: ` + priv + `, never: true}
`
	run := t.TempDir()
	for _, tc := range []struct {
		allow  string
		broken bool
	}{
		{"", true},
		{"    allow: [{from: " + hostile + ", to: 192.0.2.10, proto: tcp, port: 443}]", false},
	} {
		text := strings.Replace(cfgText, "%s\n", "", 1)
		if tc.allow != "" {
			text = strings.Replace(text, "routes: [0.0.0.0/0]}\n", "routes: [0.0.0.0/0]}\n"+tc.allow+"\n", 1)
		}
		cfg := writeConfig(t, text)
		if out, code := tunroute(t, "apply", "-c", cfg, "--netns", top, "--run-dir", run); code != 0 {
			t.Fatalf("apply: exit %d:\n%s", code, out)
		}
		out, code := tunroute(t, "check", "-c", cfg, "--netns", top, "--run-dir", run)
		if tc.broken != (code == 2) || tc.broken && !strings.Contains(out, "to 10.250.2.2") {
			t.Fatalf("allow %q: exit %d:\n%s", tc.allow, code, out)
		}
		// The replay: hostile sends to private's pipe address; a counter of
		// the test's own in private's input says whether it arrived.
		if reached := arrives(t, hostile, priv, "10.250.2.2"); reached != tc.broken {
			t.Errorf("allow %q: check says reachable %v, the kernel delivered it: %v", tc.allow, tc.broken, reached)
		}
	}
}

// arrives sends one UDP datagram from namespace from to addr and reports
// whether namespace to received it (counted at its input hook).
func arrives(t *testing.T, from, to, addr string) bool {
	t.Helper()
	nft := exec.Command("ip", "netns", "exec", to, "nft", "-f", "-")
	nft.Stdin = strings.NewReader("table inet trck {\n chain in {\n  type filter hook input priority -500;\n  udp dport 9 counter\n }\n}\n")
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "exec", to, "nft", "delete", "table", "inet", "trck").Run()
	h, err := netns.GetFromName(from)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			t.Fatal(err)
		}
		defer netns.Set(orig)
		c, err := net.Dial("udp", addr+":9")
		if err != nil {
			return // refused by routing: it did not arrive
		}
		c.Write([]byte("tunroute check"))
		c.Close()
	}()
	time.Sleep(100 * time.Millisecond)
	out, err := exec.Command("ip", "netns", "exec", to, "nft", "list", "table", "inet", "trck").Output()
	if err != nil {
		t.Fatal(err)
	}
	return !strings.Contains(string(out), "packets 0 ")
}
