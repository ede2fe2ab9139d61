package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

func execute(t *testing.T, h *Handle, ops ...state.Op) {
	t.Helper()
	applied, err := h.Execute(ops)
	if err != nil || !allTrue(applied) {
		t.Fatalf("execute: %v %v", applied, err)
	}
}

func observeFW(t *testing.T, h *Handle) *state.Firewall {
	t.Helper()
	s := observeT(t, h, ObserveOptions{})
	return s.Firewall
}

// checkTable compares the table in ns with want: field by field with what
// nft lists, and Observe's reading exactly (every field; cgroup ids as
// resolved at Execute, counters of an idle namespace are zero).
func checkTable(t *testing.T, h *Handle, ns, step string, want *state.Firewall) {
	t.Helper()
	resolved, err := resolveCgroups(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range compareWithNft(resolved, nftOracle(t, ns)) {
		t.Errorf("%s: %s", step, d)
	}
	got := observeFW(t, h)
	if !got.Equal(want) {
		t.Errorf("%s: Observe differs:\n%s\nwant:\n%s", step, strings.Join(got.Lines(), "\n"), strings.Join(want.Lines(), "\n"))
		return
	}
	if !reflect.DeepEqual(got, resolved) {
		t.Errorf("%s: Observe is equal but not identical:\n%s\nwant\n%s", step, js(got), js(resolved))
	}
}

// TestFirewallMatchesNft: the kill switch internal/compile's TestVPNUp
// produces, and a table that uses every field, added, replaced back and
// forth and deleted; after each step nft (the oracle) lists exactly the
// desired rules and Observe reads them back.
func TestFirewallMatchesNft(t *testing.T) {
	ns, h := firewallNS(t, "oracle")
	vpn, every := vpnUpFirewall(), everyFieldFirewall()
	if got := strings.Join(vpn.Lines(), "\n"); got != vpnUpText {
		t.Fatalf("the copy of TestVPNUp's table differs from its text:\n%s", got)
	}
	if observeFW(t, h) != nil {
		t.Fatal("a fresh namespace has a firewall")
	}
	execute(t, h, fwOp(state.Add, vpn, nil))
	checkTable(t, h, ns, "add", vpn)
	execute(t, h, fwOp(state.Replace, every, vpn))
	checkTable(t, h, ns, "replace", every)
	execute(t, h, fwOp(state.Replace, vpn, every))
	checkTable(t, h, ns, "replace back", vpn)
	execute(t, h, fwOp(state.Delete, vpn, nil))
	if fw := observeFW(t, h); fw != nil {
		t.Errorf("after delete Observe gives %v", fw.Lines())
	}
	if out := nftIn(t, ns, "list", "tables"); out != "" {
		t.Errorf("after delete nft lists %q", out)
	}
}

// foreignRuleset holds tables tunroute does not own, one of them named
// like tunroute's in another family, with expressions tunroute never
// writes.
const foreignRuleset = `
table inet foreign {
	set blocked {
		type ipv4_addr
		flags interval
		elements = { 192.0.2.0/28, 198.51.100.7 }
	}
	chain output {
		type filter hook output priority 5; policy accept;
		ip daddr @blocked counter drop comment "theirs"
		tcp dport 22 limit rate 10/second log prefix "ssh " accept
		meta l4proto udp udp dport 51820 meta mark set 0xca6c
	}
}
table ip tunroute {
	chain c {
		type filter hook output priority 0; policy accept;
		ip daddr 10.0.0.0/8 counter
	}
}
table ip6 other6 {
	chain c {
		type filter hook input priority 0; policy accept;
		icmpv6 type echo-request counter accept
	}
}
table inet tunroute2 {
	chain c {
		type nat hook postrouting priority 100; policy accept;
		oifname "eth9" masquerade
	}
}
`

// foreignListing lists every table but tunroute's.
func foreignListing(t *testing.T, ns string) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(nftIn(t, ns, "list", "tables")), "\n") {
		f := strings.Fields(line) // table FAMILY NAME
		if len(f) != 3 || (f[1] == "inet" && f[2] == state.FirewallTable) {
			continue
		}
		out = append(out, nftIn(t, ns, "-a", "list", "table", f[1], f[2]))
	}
	return strings.Join(out, "\n")
}

// TestFirewallForeignTables: other tables, even one named tunroute in
// another family, are untouched by add, replace and delete, and Observe
// reads none of them.
func TestFirewallForeignTables(t *testing.T) {
	needNft(t)
	fakeCgroups(t, "system.slice/backup.service", "tr.slice/app.service")
	ns := newNftNS(t, "foreign")
	nftScript(t, ns, foreignRuleset)
	before := foreignListing(t, ns)
	if strings.Count(before, "table ") != 4 {
		t.Fatalf("foreign ruleset:\n%s", before)
	}
	h := openT(t, ns)
	if fw := observeFW(t, h); fw != nil {
		t.Fatalf("Observe took a foreign table for tunroute's: %v", fw.Lines())
	}
	steps := []struct {
		name string
		op   state.Op
	}{
		{"add", fwOp(state.Add, vpnUpFirewall(), nil)},
		{"replace", fwOp(state.Replace, everyFieldFirewall(), vpnUpFirewall())},
		{"delete", fwOp(state.Delete, everyFieldFirewall(), nil)},
	}
	for _, st := range steps {
		execute(t, h, st.op)
		if after := foreignListing(t, ns); after != before {
			t.Errorf("%s changed the foreign tables:\n%s\nbefore:\n%s", st.name, after, before)
		}
		fw := observeFW(t, h)
		if want := st.op.Firewall; st.op.Action == state.Delete && fw != nil || st.op.Action != state.Delete && !fw.Equal(want) {
			t.Errorf("%s: Observe gives %v", st.name, fw)
		}
	}
}

// ipDump is everything iproute2 shows of a namespace's routing state.
func ipDump(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"-d", "addr", "show"}, {"-d", "route", "show", "table", "all"}, {"-6", "-d", "route", "show", "table", "all"},
		{"rule", "show"}, {"-6", "rule", "show"}} {
		b.WriteString(ipn(t, ns, args...))
	}
	return b.String()
}

// TestFirewallMixedOps: addresses, routes, rules and the firewall in one
// Execute, in order, with a failure after the firewall op: applied is
// exact, and plan.Apply's rollback leaves `nft list ruleset` and the ip
// dumps as they were.
func TestFirewallMixedOps(t *testing.T) {
	needNft(t)
	fakeCgroups(t, "system.slice/backup.service", "tr.slice/app.service")
	ns := newNftNS(t, "mixed")
	quietIPv6(t, ns)
	ipScript(t, ns, vethVA)
	nftScript(t, ns, foreignRuleset)
	h := openT(t, ns)
	addr := &state.Addr{Dev: "va", Prefix: pfx("10.88.0.1/24"), Scope: state.ScopeUniverse, Flags: state.AddrNoDAD}
	r1 := owned(100, state.RouteUnicast, "10.89.0.0/16", via("10.88.0.254", "va"))
	bad := owned(100, state.RouteUnicast, "10.90.0.0/16", via("10.99.0.254", "va")) // gateway not on a connected network
	rule := ownedRule(4, 4000, func(r *state.Rule) { r.Table = 100 })
	mixed := func(fw state.Op) []state.Op {
		return []state.Op{{Action: state.Add, Addr: addr}, {Action: state.Add, Route: r1}, fw, {Action: state.Add, Route: bad}, {Action: state.Add, Rule: rule}}
	}
	snapshot := func() string { settle(t, ns); return nftIn(t, ns, "list", "ruleset") + ipDump(t, ns) }

	t.Run("add", func(t *testing.T) {
		before := snapshot()
		ops := mixed(fwOp(state.Add, vpnUpFirewall(), nil))
		applied, err := h.Execute(ops)
		var oe *OpError
		if !errors.As(err, &oe) || oe.Index != 3 || !errors.Is(err, unix.ENETUNREACH) {
			t.Fatalf("error %v", err)
		}
		// The kernel goes on after the bad route within its batch.
		if want := []bool{true, true, true, false, true}; !reflect.DeepEqual(applied, want) {
			t.Errorf("applied %v, want %v", applied, want)
		}
		if fw := observeFW(t, h); !fw.Equal(vpnUpFirewall()) {
			t.Errorf("the firewall op says applied; Observe gives %v", fw)
		}
		if !routeIn(t, ns, "10.89.0.0/16", 100) || routeIn(t, ns, "10.90.0.0/16", 100) ||
			!strings.Contains(ipn(t, ns, "rule", "show"), "4000:") {
			t.Errorf("ip shows another outcome:\n%s", ipDump(t, ns))
		}
		if err := plan.Undo(h, ops, applied); err != nil {
			t.Fatal(err)
		}
		if after := snapshot(); after != before {
			t.Errorf("undo left:\n%s\nbefore:\n%s", after, before)
		}
		// The same through plan.Apply.
		if err := plan.Apply(h, ops); err == nil || errors.As(err, new(*plan.RollbackError)) {
			t.Fatalf("apply: %v", err)
		}
		if after := snapshot(); after != before {
			t.Errorf("apply's rollback left:\n%s\nbefore:\n%s", after, before)
		}
	})

	t.Run("replace", func(t *testing.T) {
		// The previous table comes back exactly, with its counts (here
		// made up: a rule's counter can start at any value).
		prev := vpnUpFirewall()
		out := prev.Chains[2].Rules
		out[1].Packets, out[1].Bytes = 5, 640
		out[len(out)-1].Packets, out[len(out)-1].Bytes = 48, 6364
		execute(t, h, fwOp(state.Add, prev, nil))
		observed := observeFW(t, h)
		if fmt.Sprint(observed.Chains[2].Rules[1].Packets, observed.Chains[2].Rules[11].Bytes) != "5 6364" {
			t.Fatalf("counts did not start where asked: %s", js(observed.Chains[2].Rules))
		}
		before := snapshot()
		if err := plan.Apply(h, mixed(fwOp(state.Replace, everyFieldFirewall(), observed))); err == nil {
			t.Fatal("apply succeeded")
		}
		if after := snapshot(); after != before {
			t.Errorf("apply's rollback left:\n%s\nbefore:\n%s", after, before)
		}
		if got := observeFW(t, h); !reflect.DeepEqual(got, observed) {
			t.Errorf("rolled back to\n%s\nwant\n%s", js(got), js(observed))
		}
		execute(t, h, fwOp(state.Delete, prev, nil))
	})

	t.Run("the firewall op fails", func(t *testing.T) {
		before := snapshot()
		broken := &state.Firewall{Chains: []state.Chain{{Name: "c", Type: "filter", Hook: "output", Policy: "accept",
			Rules: []state.FwRule{{Comment: "fine", Verdict: "accept"}, {Comment: "masquerade needs a nat chain", Masquerade: true}}}}}
		ops := mixed(fwOp(state.Add, broken, nil))
		applied, err := h.Execute(ops)
		var oe *OpError
		if !errors.As(err, &oe) || oe.Index != 2 {
			t.Fatalf("error %v", err)
		}
		if want := []bool{true, true, false, false, false}; !reflect.DeepEqual(applied, want) {
			t.Errorf("applied %v, want %v", applied, want)
		}
		if !strings.Contains(err.Error(), "add rule 2 of chain c (masquerade") || !strings.Contains(err.Error(), "nothing of the transaction took effect") {
			t.Errorf("error does not name the rule: %v", err)
		}
		if err := plan.Undo(h, ops, applied); err != nil {
			t.Fatal(err)
		}
		if after := snapshot(); after != before {
			t.Errorf("undo left:\n%s\nbefore:\n%s", after, before)
		}
	})
}

// TestFirewallErrors: what the kernel refuses changes nothing, and the
// error says which op and why.
func TestFirewallErrors(t *testing.T) {
	ns, h := firewallNS(t, "errors")
	fw := vpnUpFirewall()
	try := func(op state.Op, errno unix.Errno, text string) {
		t.Helper()
		before := nftIn(t, ns, "-a", "list", "ruleset")
		applied, err := h.Execute([]state.Op{op})
		var oe *OpError
		if applied[0] || !errors.As(err, &oe) || oe.Index != 0 || (errno != 0 && !errors.Is(err, errno)) || !strings.Contains(err.Error(), text) {
			t.Errorf("%s: applied %v, error %v; want %v with %q", op, applied, err, errno, text)
		}
		if after := nftIn(t, ns, "-a", "list", "ruleset"); after != before {
			t.Errorf("%s changed the ruleset:\n%s\nbefore:\n%s", op, after, before)
		}
	}
	try(fwOp(state.Replace, fw, fw), unix.ENOENT, "replace firewall table inet tunroute: select_output (1 rules), select_nat (1 rules), killswitch_output (12 rules), killswitch_forward (8 rules): delete table inet tunroute: no such file or directory")
	try(fwOp(state.Delete, fw, nil), unix.ENOENT, "delete table inet tunroute: no such file or directory")
	execute(t, h, fwOp(state.Add, fw, nil))
	try(fwOp(state.Add, fw, nil), unix.EEXIST, "add table inet tunroute: file exists; nothing of the transaction took effect")
	gone := copyFirewall(fw)
	gone.Chains[0].Rules[0].Cgroup = "system.slice/gone.service"
	try(fwOp(state.Replace, gone, fw), 0, `cgroup "system.slice/gone.service" does not exist`)
	bad := copyFirewall(fw)
	bad.Chains[2].Rules[3].ICMPv6Types = []uint8{1}
	try(fwOp(state.Replace, bad, fw), 0, "rule 4 of chain killswitch_output (meta nfproto ipv6 meta l4proto udp th dport 53 icmpv6 type { 1 } counter drop \"DNS only to the declared resolvers\"): icmpv6_types needs proto 58")
	noHook := copyFirewall(fw)
	noHook.Chains[1].Hook = "egress"
	try(fwOp(state.Replace, noHook, fw), 0, `chain select_nat: hook "egress"`)
	if got := observeFW(t, h); !got.Equal(fw) {
		t.Errorf("after the failures Observe gives %v", got.Lines())
	}
}

// TestFirewallEditedByHand: changes made with nft to tunroute's table show
// in Observe, so a plan replaces the table, which restores it.
func TestFirewallEditedByHand(t *testing.T) {
	ns, h := firewallNS(t, "edited")
	fw := vpnUpFirewall()
	handle := func(comment string) string {
		m := regexp.MustCompile(`comment "` + regexp.QuoteMeta(comment) + `" # handle (\d+)`).FindStringSubmatch(nftIn(t, ns, "-a", "list", "table", "inet", "tunroute"))
		if m == nil {
			t.Fatalf("no rule %q", comment)
		}
		return m[1]
	}
	for _, tc := range []struct {
		name string
		edit func()
	}{
		{"rule replaced with the same text", func() {
			nftIn(t, ns, "replace", "rule", "inet", "tunroute", "killswitch_output", "handle", handle("loopback"), `oifname "lo" accept comment "loopback"`)
		}},
		{"rule inserted", func() {
			nftIn(t, ns, "insert", "rule", "inet", "tunroute", "killswitch_output", `oifname "eth0" accept`)
		}},
		{"final drop deleted", func() {
			nftIn(t, ns, "delete", "rule", "inet", "tunroute", "killswitch_output", "handle", handle("kill switch: not in a tunnel, not allowed in clear"))
		}},
		{"chain added", func() { nftIn(t, ns, "add", "chain", "inet", "tunroute", "extra") }},
		{"policy changed", func() {
			nftIn(t, ns, "add", "chain", "inet", "tunroute", "killswitch_forward", "{ type filter hook forward priority 0; policy drop; }")
		}},
		{"table dormant", func() {
			// A persistent table cannot be made dormant (the kernel
			// refuses a change of its flags): the table an older
			// tunroute made, without flags, can.
			nftIn(t, ns, "delete", "table", "inet", "tunroute")
			withoutOwnedTables(func() { execute(t, h, fwOp(state.Add, fw, nil)) })
			nftIn(t, ns, "add", "table", "inet", "tunroute", "{ flags dormant; }")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if observeFW(t, h) == nil {
				execute(t, h, fwOp(state.Add, fw, nil))
			}
			tc.edit()
			observed := observeT(t, h, ObserveOptions{})
			if observed.Firewall.Equal(fw) {
				t.Fatalf("the edit does not show:\n%s", strings.Join(observed.Firewall.Lines(), "\n"))
			}
			p, err := plan.Diff(&state.State{Firewall: fw}, observed)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Ops) != 1 || p.Ops[0].Action != state.Replace {
				t.Fatalf("plan: %v", p.Ops)
			}
			if err := plan.Apply(h, p.Ops); err != nil {
				t.Fatal(err)
			}
			checkTable(t, h, ns, "after the plan", fw)
			// A rollback can write back what Observe saw, as Observe saw it.
			execute(t, h, p.Ops[0].Inverse())
			if got := observeFW(t, h); !got.Equal(observed.Firewall) {
				t.Errorf("written back:\n%s\nwant:\n%s", strings.Join(got.Lines(), "\n"), strings.Join(observed.Firewall.Lines(), "\n"))
			}
			execute(t, h, fwOp(state.Replace, fw, observed.Firewall))
		})
	}
}

// TestFirewallNftSeesComments: nft shows each rule's comment and ignores
// tunroute's record; nft -f can load what nft lists of the table.
func TestFirewallNftSeesComments(t *testing.T) {
	ns, h := firewallNS(t, "comments")
	every := everyFieldFirewall()
	// nft writes comments of at most 128 bytes, but lists longer ones.
	every.Chains[0].Rules = append(every.Chains[0].Rules, state.FwRule{Comment: strings.Repeat("long ", 40), Counter: true})
	execute(t, h, fwOp(state.Add, every, nil))
	listing := nftIn(t, ns, "list", "table", "inet", "tunroute")
	for _, c := range every.Chains {
		for _, r := range c.Rules {
			if r.Comment != "" && !strings.Contains(listing, `comment "`+r.Comment+`"`) {
				t.Errorf("nft does not show %q", r.Comment)
			}
		}
	}
	if strings.Contains(listing, "from_sets") || strings.Contains(listing, `"family"`) {
		t.Errorf("nft shows the record:\n%s", listing)
	}
	// What nft writes back has nft's userdata only: Observe sees rules it
	// cannot vouch for. (everyFieldFirewall's chain names "mark" and "out"
	// are nft keywords, which its listing does not quote, and nft cannot
	// read back the made-up cgroup ids.)
	ks := vpnUpFirewall()
	ks.Chains = ks.Chains[2:]
	execute(t, h, fwOp(state.Replace, ks, every))
	listing = nftIn(t, ns, "list", "table", "inet", "tunroute")
	nftIn(t, ns, "delete", "table", "inet", "tunroute")
	// nft before 1.0.7 lists the persist flag as an empty "flags" line
	// it cannot read back.
	listing = regexp.MustCompile(`(?m)^\s*flags\s*$\n`).ReplaceAllString(listing, "")
	f := filepath.Join(t.TempDir(), "listing.nft")
	if err := os.WriteFile(f, []byte(listing), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("nft cannot load its own listing of the table: %v: %s", err, out)
	}
	fw := observeFW(t, h)
	if fw == nil || !strings.HasPrefix(fw.Chains[0].Rules[0].Comment, UnknownRule) {
		t.Errorf("a table loaded by nft reads as %v", fw)
	}
}

// TestFirewallLarge: a thousand rules and sets of tens of thousands of
// prefixes go in one transaction and read back; a transaction larger than
// the socket takes is refused with a clear error before anything is sent.
func TestFirewallLarge(t *testing.T) {
	needNft(t)
	ns := newNftNS(t, "large")
	h := openT(t, ns)
	prefixes := func(n int, v6 bool) []netip.Prefix {
		out := make([]netip.Prefix, n)
		for i := range out {
			if v6 {
				out[i] = netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::/64", i>>16, i&0xffff))
			} else {
				out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 14), byte(i >> 6), byte(i << 2)}), 31)
			}
		}
		return out
	}
	c := state.Chain{Name: "big", Type: "filter", Hook: "output", Policy: "accept"}
	for i := 0; i < 1000; i++ {
		c.Rules = append(c.Rules, state.FwRule{Comment: fmt.Sprintf("rule %d", i), Family: 4, Proto: 6, DPorts: ports1(uint16(10000 + i)),
			Counter: true, Verdict: "drop"})
	}
	c.Rules = append(c.Rules,
		state.FwRule{Comment: "v4", Family: 4, Daddr: prefixes(20000, false), Verdict: "accept"},
		state.FwRule{Comment: "v6", Family: 6, NotDaddr: prefixes(20000, true), Verdict: "drop"})
	fw := &state.Firewall{Chains: []state.Chain{c}}
	start := time.Now()
	execute(t, h, fwOp(state.Add, fw, nil))
	added := time.Since(start)
	start = time.Now()
	got := observeFW(t, h)
	observed := time.Since(start)
	if !got.Equal(fw) {
		t.Errorf("Observe differs")
	}
	start = time.Now()
	execute(t, h, fwOp(state.Replace, fw, got))
	t.Logf("1002 rules, 40000 prefixes: add %v, observe %v, replace %v", added, observed, time.Since(start))
	if n := strings.Count(nftIn(t, ns, "list", "chain", "inet", "tunroute", "big"), "comment"); n != 1002 {
		t.Errorf("nft lists %d rules", n)
	}

	// As if the socket took less than this table.
	nf, err := h.nfConn()
	if err != nil {
		t.Fatal(err)
	}
	nf.maxSend = 1 << 20
	before := nftIn(t, ns, "list", "ruleset")
	applied, err := h.Execute([]state.Op{fwOp(state.Replace, fw, fw)})
	if applied[0] || !errors.Is(err, unix.EMSGSIZE) || !strings.Contains(err.Error(), "the netlink socket takes at most 1048576") {
		t.Errorf("too large: %v %v", applied, err)
	}
	if nftIn(t, ns, "list", "ruleset") != before {
		t.Error("the refused transaction changed the ruleset")
	}
}
