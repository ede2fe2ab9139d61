package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/kerneltest"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// These tests run the real commands against network namespaces named
// tr-e2e-*, built with iproute2 (the independent oracle), and compare
// what the kernel holds afterwards with `ip -j`.

func needRoot(t *testing.T) { testns.Need(t, "ip") }

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	return testns.IP(t, "", args...)
}

// clientNS builds a namespace like a VPN client: eth0 to an ISP (v4+v6,
// default routes), wg0 a tunnel stand-in (a veth, so it has carrier).
func clientNS(t *testing.T, short string) string {
	t.Helper()
	needRoot(t)
	ns := fmt.Sprintf("tr-e2e-%s-%d", short, os.Getpid())
	exec.Command("ip", "netns", "del", ns).Run()
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// No duplicate address detection: link-local addresses would finish
	// it (and get their local routes) while a test compares dumps.
	for _, k := range []string{"all", "default"} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+k+".accept_dad=0").CombinedOutput(); err != nil {
			t.Fatalf("sysctl: %v %s", err, out)
		}
	}
	for _, c := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "eth0", "type", "veth", "peer", "name", "isp0"},
		{"link", "add", "wg0", "type", "veth", "peer", "name", "wgpeer"},
		{"link", "set", "eth0", "up"}, {"link", "set", "isp0", "up"},
		{"link", "set", "wg0", "up"}, {"link", "set", "wgpeer", "up"},
		{"addr", "add", "10.1.0.2/24", "dev", "eth0"},
		{"addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad"},
		{"addr", "add", "10.30.0.2/24", "dev", "wg0"},
		{"addr", "add", "2001:db8:30::2/64", "dev", "wg0", "nodad"},
		{"route", "add", "default", "via", "10.1.0.1"},
		{"-6", "route", "add", "default", "via", "2001:db8:1::1"},
	} {
		ipCmd(t, append([]string{"-n", ns}, c...)...)
	}
	return ns
}

// tunroute runs the command line in-process and returns its output and
// exit status.
func tunroute(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	var ee *exitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.code
	default:
		return out.String() + "error: " + err.Error(), 1
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tunroute.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dump is everything iproute2 shows of a namespace's routing, as JSON.
func dump(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"-j", "-d", "addr", "show"},
		{"-j", "-d", "route", "show", "table", "all"},
		{"-6", "-j", "-d", "route", "show", "table", "all"},
		{"-j", "-d", "rule", "show"},
		{"-6", "-j", "-d", "rule", "show"},
	} {
		b.WriteString(ipCmd(t, append([]string{"-n", ns}, c...)...))
		b.WriteByte('\n')
	}
	return b.String()
}

// foreignDump is the dump without tunroute's objects (proto 116) and
// without the routes the kernel makes for tunroute's own addresses.
func foreignDump(t *testing.T, ns string, ownAddrs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"-j", "-d", "route", "show", "table", "all"},
		{"-6", "-j", "-d", "route", "show", "table", "all"},
		{"-j", "-d", "rule", "show"},
		{"-6", "-j", "-d", "rule", "show"},
	} {
		var objs []map[string]any
		if err := json.Unmarshal([]byte(ipCmd(t, append([]string{"-n", ns}, c...)...)), &objs); err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if p := fmt.Sprint(o["protocol"]); p == "116" || p == state.ProtoName {
				continue
			}
			own := false
			for _, a := range ownAddrs {
				own = own || o["dst"] == a && o["prefsrc"] == a
			}
			if own {
				continue
			}
			j, _ := json.Marshal(o)
			b.Write(j)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

const dualIdentityAndRedirect = `
identities:
  - name: inside
    device: wg0
    gateway: none
  - name: outside
    device: eth0
    gateway: auto
routes:
  - to: [10.99.0.0/16, 2001:db8:99::/48]
    via: inside
  - to: 10.99.5.0/24
    via: outside
  - to: 203.0.113.128/25
    type: unreachable
local:
  - to: 10.20.0.0/16
    via: inside
    source: 10.10.0.1
    add_address: lo
redirect:
  via: inside
  servers: [198.51.100.2]
`

// TestApplyMatchesKernel: apply, compare the kernel's view with the
// expected objects, plan again (nothing), down (nothing of ours left).
func TestApplyMatchesKernel(t *testing.T) {
	ns := clientNS(t, "apply")
	cfg := writeConfig(t, dualIdentityAndRedirect)
	if out, code := tunroute(t, "plan", "-c", cfg, "--netns", ns); code != 2 {
		t.Fatalf("plan before apply: exit %d, want 2\n%s", code, out)
	}
	if out, code := tunroute(t, "apply", "-c", cfg, "--netns", ns); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	want := map[string]string{
		"route":      "0.0.0.0/1 dev wg0 scope link src 10.30.0.2 \n10.99.0.0/16 dev wg0 scope link src 10.30.0.2 \n10.99.5.0/24 via 10.1.0.1 dev eth0 src 10.1.0.2 \n128.0.0.0/1 dev wg0 scope link src 10.30.0.2 \n198.51.100.2 via 10.1.0.1 dev eth0 \nunreachable 203.0.113.128/25 \n",
		"-6 route":   "2001:db8:99::/48 dev wg0 src 2001:db8:30::2 metric 1024 pref medium\n::/1 dev wg0 src 2001:db8:30::2 metric 1024 pref medium\n8000::/1 dev wg0 src 2001:db8:30::2 metric 1024 pref medium\n",
		"table 1000": "default dev wg0 proto 116 scope link src 10.30.0.2 \n10.30.0.0/24 dev wg0 proto 116 scope link src 10.30.0.2 \n",
		"table 1001": "default via 10.1.0.1 dev eth0 proto 116 src 10.1.0.2 \n10.1.0.0/24 dev eth0 proto 116 scope link src 10.1.0.2 \n",
		"table 1002": "10.20.0.0/16 dev wg0 proto 116 scope link src 10.10.0.1 \n",
		"-6 t 1000":  "2001:db8:30::/64 dev wg0 proto 116 src 2001:db8:30::2 metric 1024 pref medium\ndefault dev wg0 proto 116 src 2001:db8:30::2 metric 1024 pref medium\n",
		"rule":       "0:\tfrom all lookup local\n500:\tfrom all iif lo lookup 1002 proto 116\n5000:\tfrom 10.30.0.2 iif lo lookup 1000 proto 116\n5001:\tfrom 10.1.0.2 iif lo lookup 1001 proto 116\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n",
		"-6 rule":    "0:\tfrom all lookup local\n5000:\tfrom 2001:db8:30::2 iif lo lookup 1000 proto 116\n5001:\tfrom 2001:db8:1::2 iif lo lookup 1001 proto 116\n32766:\tfrom all lookup main\n",
		"addr lo":    "10.10.0.1/32",
	}
	got := map[string]string{
		"route":      ipCmd(t, "-n", ns, "route", "show", "proto", "116"),
		"-6 route":   ipCmd(t, "-n", ns, "-6", "route", "show", "proto", "116"),
		"table 1000": ipCmd(t, "-n", ns, "route", "show", "table", "1000"),
		"table 1001": ipCmd(t, "-n", ns, "route", "show", "table", "1001"),
		"table 1002": ipCmd(t, "-n", ns, "route", "show", "table", "1002"),
		"-6 t 1000":  ipCmd(t, "-n", ns, "-6", "route", "show", "table", "1000"),
		"rule":       ipCmd(t, "-n", ns, "rule"),
		"-6 rule":    ipCmd(t, "-n", ns, "-6", "rule"),
	}
	// iproute2 6.1 does not print IFA_PROTO: ip shows the address,
	// tunroute's own reading shows the owner mark.
	got["addr lo"] = ""
	if strings.Contains(ipCmd(t, "-n", ns, "addr", "show", "dev", "lo"), "inet 10.10.0.1/32 scope global lo") {
		got["addr lo"] = "10.10.0.1/32"
	}
	if !ownedAddr(t, ns, "10.10.0.1/32") {
		t.Errorf("10.10.0.1/32 on lo does not carry tunroute's IFA_PROTO mark")
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("ip %s:\n%s\nwant:\n%s", k, got[k], w)
		}
	}
	if out, code := tunroute(t, "plan", "-c", cfg, "--netns", ns); code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("plan after apply: exit %d, want 0 and no changes\n%s", code, out)
	}
	if out, code := tunroute(t, "apply", "-c", cfg, "--netns", ns); code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("second apply: exit %d\n%s", code, out)
	}
	if out, code := tunroute(t, "down", "--netns", ns); code != 0 {
		t.Fatalf("down: exit %d\n%s", code, out)
	}
	for _, c := range [][]string{{"route", "show", "table", "all", "proto", "116"}, {"-6", "route", "show", "table", "all", "proto", "116"}} {
		if out := ipCmd(t, append([]string{"-n", ns}, c...)...); out != "" {
			t.Errorf("after down, ip %v still shows:\n%s", c, out)
		}
	}
	if out := ipCmd(t, "-n", ns, "rule"); strings.Contains(out, "proto 116") {
		t.Errorf("after down, rules remain:\n%s", out)
	}
	if out := ipCmd(t, "-n", ns, "addr", "show", "dev", "lo"); strings.Contains(out, "10.10.0.1") {
		t.Errorf("after down, the address remains:\n%s", out)
	}
}

// TestForeignObjectsUntouched: a route, a rule, an address and a table
// added by hand are identical after apply and after down.
func TestForeignObjectsUntouched(t *testing.T) {
	ns := clientNS(t, "foreign")
	for _, c := range [][]string{
		{"route", "add", "10.200.0.0/16", "dev", "eth0", "table", "1000", "proto", "static"}, // in the table tunroute will use
		{"route", "add", "10.201.0.0/16", "via", "10.1.0.1", "table", "77"},
		{"route", "add", "192.168.0.0/16", "via", "10.1.0.1", "proto", "dhcp"},
		{"-6", "route", "add", "2001:db8:77::/48", "via", "2001:db8:1::1", "table", "77"},
		{"rule", "add", "pref", "4000", "from", "10.9.9.9", "lookup", "77"},
		{"rule", "add", "pref", "5000", "fwmark", "0xca6c", "lookup", "51820"}, // same pref as an identity
		{"-6", "rule", "add", "pref", "4000", "from", "2001:db8:9::9", "lookup", "77"},
		{"addr", "add", "10.9.9.9/32", "dev", "lo"},
	} {
		ipCmd(t, append([]string{"-n", ns}, c...)...)
	}
	before := foreignDump(t, ns)
	addrsBefore := ipCmd(t, "-n", ns, "-j", "addr", "show")
	cfg := writeConfig(t, dualIdentityAndRedirect)
	if out, code := tunroute(t, "apply", "-c", cfg, "--netns", ns); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if after := foreignDump(t, ns, "10.10.0.1"); after != before {
		t.Errorf("foreign objects changed by apply:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if out, code := tunroute(t, "down", "--netns", ns); code != 0 {
		t.Fatalf("down: exit %d\n%s", code, out)
	}
	if after := foreignDump(t, ns); after != before {
		t.Errorf("foreign objects changed by down:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if after := ipCmd(t, "-n", ns, "-j", "addr", "show"); after != addrsBefore {
		t.Errorf("addresses differ after down:\n%s\nwant\n%s", after, addrsBefore)
	}
}

func ownedAddr(t *testing.T, ns, prefix string) bool {
	t.Helper()
	s := kerneltest.Observe(t, ns)
	for i := range s.Addrs {
		if s.Addrs[i].Prefix.String() == prefix {
			return s.Addrs[i].Owned()
		}
	}
	return false
}

// failingExecutor runs the first n ops for real, then fails.
type failingExecutor struct {
	h     *kernel.Handle
	n     int
	calls int
}

func (f *failingExecutor) Execute(ops []state.Op) ([]bool, error) {
	f.calls++
	if f.calls > 1 { // the rollback
		return f.h.Execute(ops)
	}
	applied := make([]bool, len(ops))
	if f.n > 0 {
		done, err := f.h.Execute(ops[:f.n])
		copy(applied, done)
		if err != nil {
			return applied, err
		}
	}
	return applied, fmt.Errorf("%s: injected failure", ops[f.n])
}

// TestInjectedFailureRollsBack fails the apply at several points; each
// time the namespace must dump exactly as before.
func TestInjectedFailureRollsBack(t *testing.T) {
	ns := clientNS(t, "rollback")
	cfgPath := writeConfig(t, dualIdentityAndRedirect)
	// Start from an applied older config so the plan replaces and deletes too.
	older := writeConfig(t, strings.Replace(dualIdentityAndRedirect, "10.99.5.0/24", "10.99.6.0/24", 1))
	if out, code := tunroute(t, "apply", "-c", older, "--netns", ns); code != 0 {
		t.Fatalf("apply: %s", out)
	}
	before := dump(t, ns)
	p, h := kerneltest.Plan(t, ns, cfgPath)
	if len(p.Ops) < 2 {
		t.Fatalf("plan too small: %s", p.Text())
	}
	for _, at := range []int{0, 1, len(p.Ops) - 1} {
		err := plan.Apply(&failingExecutor{h: h, n: at}, p.Ops)
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("fail at %d: got %v", at, err)
		}
		if after := dump(t, ns); after != before {
			t.Fatalf("fail at %d of %d: namespace differs after rollback\nbefore:\n%s\nafter:\n%s", at, len(p.Ops), before, after)
		}
	}
	// And a failure the kernel itself reports: a device that vanished
	// between plan and apply (the plan adds and deletes routes via eth0).
	ipCmd(t, "-n", ns, "link", "del", "eth0")
	before = dump(t, ns)
	if err := plan.Apply(h, p.Ops); err == nil {
		t.Fatal("apply through a deleted device succeeded")
	} else if !strings.Contains(err.Error(), "eth0") {
		t.Errorf("the error should name the device: %v", err)
	}
	if after := dump(t, ns); after != before {
		t.Fatalf("namespace differs after a kernel-reported failure\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestApplyErrorsChangeNothing: a missing device and an unreachable
// gateway are reported with the config position, and nothing changes.
func TestApplyErrorsChangeNothing(t *testing.T) {
	ns := clientNS(t, "errors")
	before := dump(t, ns)
	cases := []struct{ yaml, want string }{
		{"identities:\n  - name: vpn\n    device: tun7\n", "tunroute.yaml:3:13: identities[0].device: device tun7 does not exist in namespace " + ns},
		{"identities:\n  - name: out\n    device: eth0\n    gateway: [10.7.7.7, 2001:db8:1::1]\n", "tunroute.yaml:4:14: identities[0].gateway: gateway 10.7.7.7 is not reachable on eth0: no connected route covers it in namespace " + ns},
		{"identities:\n  - name: out\n    device: eth0\n    gateway: nonsense\n", `tunroute.yaml:4:14: identities[0].gateway: "nonsense" is not an IP address, "auto" or "none"`},
	}
	for _, tc := range cases {
		cfg := writeConfig(t, tc.yaml)
		out, code := tunroute(t, "apply", "-c", cfg, "--netns", ns)
		if code != 1 || !strings.Contains(out, filepath.Dir(cfg)+"/"+tc.want) {
			t.Errorf("apply with\n%s\nexit %d, output:\n%s\nwant the error: %s", tc.yaml, code, out, tc.want)
		}
	}
	if out, code := tunroute(t, "plan", "-c", writeConfig(t, dualIdentityAndRedirect), "--netns", "tr-e2e-does-not-exist"); code != 1 || !strings.Contains(out, "tr-e2e-does-not-exist") {
		t.Errorf("plan in a missing namespace: exit %d\n%s", code, out)
	}
	if after := dump(t, ns); after != before {
		t.Errorf("a failed apply changed the namespace")
	}
}

// TestStatusAndSnapshot: status --json reports what tunroute owns and
// whether it is in sync; snapshot writes a State that loads back.
func TestStatusAndSnapshot(t *testing.T) {
	ns := clientNS(t, "status")
	cfg := writeConfig(t, dualIdentityAndRedirect)
	tunroute(t, "apply", "-c", cfg, "--netns", ns)
	out, code := tunroute(t, "status", "--json", "-c", cfg, "--netns", ns)
	if code != 0 {
		t.Fatalf("status: %s", out)
	}
	var st statusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.InSync == nil || !*st.InSync || len(st.Rules) != 5 || len(st.Addrs) != 1 || len(st.Identities) != 2 {
		t.Errorf("status: in_sync=%v rules=%d addrs=%d identities=%d", st.InSync, len(st.Rules), len(st.Addrs), len(st.Identities))
	}
	file := filepath.Join(t.TempDir(), "snap.json")
	if out, code := tunroute(t, "snapshot", "--netns", ns, "-o", file); code != 0 {
		t.Fatalf("snapshot: %s", out)
	}
	s, err := state.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	owned := 0
	for i := range s.Routes {
		if s.Routes[i].Owned() {
			owned++
		}
	}
	if owned != len(st.Routes) || s.Namespace != ns {
		t.Errorf("snapshot holds %d owned routes in %q, status %d", owned, s.Namespace, len(st.Routes))
	}
}

// TestConfirm: an unconfirmed apply --confirm rolls back when the time is
// up; pressing Enter keeps it.
func TestConfirm(t *testing.T) {
	ns := clientNS(t, "confirm")
	cfg := writeConfig(t, dualIdentityAndRedirect)
	before := dump(t, ns)
	run := func(stdin string, args ...string) (string, int) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs(args)
		err := root.Execute()
		if err != nil {
			return out.String() + "error: " + err.Error(), 1
		}
		return out.String(), 0
	}
	out, code := run("", "apply", "-c", cfg, "--netns", ns, "--confirm", "300ms")
	if code != 1 || !strings.Contains(out, "Rolled back.") || !strings.Contains(out, "not confirmed within 300ms") {
		t.Fatalf("unconfirmed apply: exit %d\n%s", code, out)
	}
	if after := dump(t, ns); after != before {
		t.Fatalf("an unconfirmed apply left changes behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	out, code = run("\n", "apply", "-c", cfg, "--netns", ns, "--confirm", "10s")
	if code != 0 || !strings.Contains(out, "Confirmed.") {
		t.Fatalf("confirmed apply: exit %d\n%s", code, out)
	}
	if out, code := tunroute(t, "plan", "-c", cfg, "--netns", ns); code != 0 {
		t.Fatalf("after a confirmed apply the plan is not empty:\n%s", out)
	}
}

// TestExplain: explain from the live namespace, from a snapshot and from
// a config before apply give the answer `ip route get` gives after apply.
func TestExplain(t *testing.T) {
	ns := clientNS(t, "explain")
	cfg := writeConfig(t, dualIdentityAndRedirect)
	queries := [][]string{
		{"203.0.113.7"},
		{"203.0.113.7", "from", "10.1.0.2"},
		{"10.99.5.1"},
		{"10.20.1.1"},
		{"198.51.100.2"},
		{"203.0.113.200"},
		{"2001:db8:99::1"},
	}
	explainJSON := func(args ...string) map[string]any {
		t.Helper()
		out, _ := tunroute(t, append([]string{"explain", "--json"}, args...)...)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("explain %v: %v\n%s", args, err, out)
		}
		return m
	}
	before := make([]map[string]any, len(queries))
	for i, q := range queries {
		before[i] = explainJSON(append([]string{"-c", cfg, "--netns", ns}, q...)...)
	}
	if out, code := tunroute(t, "apply", "-c", cfg, "--netns", ns); code != 0 {
		t.Fatalf("apply: %s", out)
	}
	snap := filepath.Join(t.TempDir(), "s.json")
	tunroute(t, "snapshot", "--netns", ns, "-o", snap)
	for i, q := range queries {
		out, err := exec.Command("ip", append([]string{"-n", ns, "-j", "-d", "route", "get"}, q...)...).CombinedOutput()
		var kernelAnswer []map[string]any
		want := map[string]any{}
		if err == nil && json.Unmarshal(out, &kernelAnswer) == nil && len(kernelAnswer) == 1 {
			want = kernelAnswer[0]
		} else {
			want["error"] = strings.TrimSpace(strings.TrimPrefix(string(out), "RTNETLINK answers: "))
		}
		for name, got := range map[string]map[string]any{
			"-c before apply": before[i],
			"live":            explainJSON(append([]string{"--netns", ns}, q...)...),
			"snapshot":        explainJSON(append([]string{"--state", snap}, q...)...),
		} {
			keys := []string{"type", "dst", "gateway", "dev", "table", "prefsrc", "error"}
			if want["error"] != nil {
				keys = []string{"error"}
			}
			for _, k := range keys {
				if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
					t.Errorf("explain %v (%s): %s = %v, ip route get says %v", q, name, k, got[k], want[k])
				}
			}
		}
	}
}

// TestExplainCgroupMark: explain knows the mark tunroute's firewall sets
// for a selected cgroup, and shows the fwmark rule and the route it leads to.
func TestExplainCgroupMark(t *testing.T) {
	ns := clientNS(t, "cgmark")
	cfg := writeConfig(t, `
identities:
  - {name: inside, device: wg0, gateway: none}
  - {name: outside, device: eth0}
select:
  - {cgroup: backup.slice/restic.service, via: inside}
`)
	out, code := tunroute(t, "explain", "-c", cfg, "--netns", ns, "203.0.113.7", "cgroup", "backup.slice/restic.service/worker")
	if code != 0 {
		t.Fatalf("explain: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		`socket cgroupv2 level 2 "backup.slice/restic.service" meta mark set`,
		"->  mark 0x1000000",
		"rule 4000: from all fwmark 0x1000000/0xf000000 lookup 1000",
		"203.0.113.7 dev wg0 src 10.30.0.2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	out, _ = tunroute(t, "explain", "-c", cfg, "--netns", ns, "203.0.113.7", "cgroup", "other.slice")
	if !strings.Contains(out, "no selector marks cgroup other.slice") || !strings.Contains(out, "via 10.1.0.1 dev eth0") {
		t.Errorf("another cgroup must not be marked:\n%s", out)
	}
}

// TestConfirmWithRenamedBinary: `tunroute confirm` reaches the waiting
// apply whatever the binary is called (a distribution's wrapper, a copy
// under another name): the change is kept.
func TestConfirmWithRenamedBinary(t *testing.T) {
	ns := clientNS(t, "confrn")
	cfg := writeConfig(t, dualIdentityAndRedirect)
	bin := filepath.Join(t.TempDir(), "vpn-routing")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	runDir := t.TempDir()
	apply := exec.Command(bin, "apply", "-c", cfg, "--netns", ns, "--confirm", "60s", "--run-dir", runDir)
	stdin, err := apply.StdinPipe() // kept open: nobody presses Enter
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var out testns.Buffer
	apply.Stdout, apply.Stderr = &out, &out
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	defer apply.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Confirm within") {
		if time.Now().After(deadline) {
			t.Fatalf("apply never asked for confirmation:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o, err := exec.Command(bin, "confirm", "--netns", ns, "--run-dir", runDir).CombinedOutput(); err != nil {
		t.Fatalf("confirm: %v\n%s", err, o)
	}
	if err := apply.Wait(); err != nil {
		t.Fatalf("apply after confirm: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Confirmed.") {
		t.Fatalf("apply output:\n%s", out.String())
	}
	if o, code := tunroute(t, "plan", "-c", cfg, "--netns", ns); code != 0 {
		t.Fatalf("the confirmed change was not kept:\n%s", o)
	}
	if o, err := exec.Command(bin, "confirm", "--netns", ns, "--run-dir", runDir).CombinedOutput(); err == nil || !strings.Contains(string(o), "no apply is waiting") {
		t.Fatalf("a second confirm: %v\n%s", err, o)
	}
}
