package domaintest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/netnsname"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestDown: applying a config with domains, then one without one of
// them, then `tunroute down`, leaves the host exactly as it was (links,
// addresses, routes of every table, rules, nftables), with the other
// tools' objects untouched: a namespace, a link, a route, a rule, an
// nftables table, and the domain namespace of another config. Dropping a
// domain from the config deletes its namespace and moves its interface
// back to the host, addresses and all.
func TestDown(t *testing.T) {
	e := newEnv(t, "dn")
	top, d1, d2 := e.NS("top"), e.NS("d1"), e.NS("d2")
	e.addNS("top", "foreign", "lan", "otherdomain")
	e.router(top)
	// Other tools' objects.
	e.veth(top, "dtforeign0", []string{"10.125.0.1/24", "2001:db8:125::1/64"}, e.NS("foreign"), "eth0", []string{"10.125.0.9/24"})
	e.ip(top, "route", "add", "blackhole", "10.123.0.0/24", "proto", "static")
	e.ip(top, "-6", "route", "add", "blackhole", "2001:db8:123::/48", "proto", "static")
	e.ip(top, "rule", "add", "from", "10.124.0.0/24", "lookup", "100", "pref", "3000")
	e.ip(top, "-6", "rule", "add", "from", "2001:db8:124::/48", "lookup", "100", "pref", "3000")
	e.nftLoad(top, testns.ForeignNftables)
	// A namespace another config's tunroute made (marked for another top).
	e.ip(e.NS("otherdomain"), "link", "set", "lo", "alias", kernel.DomainMark+netnsname.Name(e.NS("elsewhere")).Owner())
	// The interface d2 takes, and the LAN behind it.
	e.veth(top, "dtmove0", []string{"10.126.0.2/24", "2001:db8:126::2/64"}, e.NS("lan"), "eth0", []string{"10.126.0.1/24", "2001:db8:126::1/64"})
	e.serve(e.NS("lan"), "lan", probePort)
	e.waitLinks(top)
	before := e.snapshot(top)
	nss := testns.Own(e.Prefix)

	full := e.configAs("down-full.yaml", "down.yaml", map[string]any{"WithD2": true})
	e.Tops = append(e.Tops, top)

	// An apply not confirmed in time is rolled back: to exactly nothing.
	out, code := e.tr("apply", "-c", full, "--netns", top, "--confirm", "500ms")
	if code == 0 || !strings.Contains(out, "Rolled back.") {
		t.Errorf("apply --confirm 500ms, unconfirmed: exit %d\n%s", code, out)
	}
	if after := e.snapshot(top); after != before {
		t.Errorf("the host after a rolled back apply differs from before:\n%s", lineDiff(before, after))
	}
	if got := testns.Own(e.Prefix); !slices.Equal(got, nss) {
		t.Errorf("namespaces after a rolled back apply: %v, want %v", got, nss)
	}
	for _, d := range []string{d1, d2} {
		if _, err := os.Stat(filepath.Join("/etc/netns", d)); err == nil {
			t.Errorf("/etc/netns/%s is left after a rolled back apply", d)
		}
	}

	out = e.apply(full, top)
	for _, want := range []string{"+ namespace " + d1, "+ namespace " + d2, "> move dtmove0 from namespace " + top + " into namespace " + d2} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	e.waitLinks(top, d1, d2)
	if got := strings.Join(e.links(d2), " "); got != "dt-d12 dt-d2 dtmove0 lo" {
		t.Errorf("links in d2: %s", got)
	}
	if out, code := e.exec(d2, nil, "tcp", e.helper, "10.126.0.1:7000"); code != 0 || !strings.HasPrefix(out, "lan 10.126.0.2:") {
		t.Errorf("from d2, through the moved interface: exit %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join("/etc/netns", d2, "resolv.conf")); err != nil {
		t.Errorf("d2's resolv.conf: %v", err)
	}

	// The config drops d2: its namespace goes, its interface comes back.
	less := e.configAs("down-less.yaml", "down.yaml", map[string]any{"WithD2": false})
	out = e.apply(less, top)
	for _, want := range []string{"- namespace " + d2 + " (deleted)", "> move dtmove0 from namespace " + d2 + " into namespace " + top} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", d2)); err == nil {
		t.Errorf("namespace %s still exists", d2)
	}
	if _, err := os.Stat(filepath.Join("/etc/netns", d2)); err == nil {
		t.Errorf("/etc/netns/%s still exists", d2)
	}
	if got := strings.Join(e.links(d1), " "); got != "dt-d1 lo" {
		t.Errorf("links in d1 after d2 left: %s (the pipe between them must go)", got)
	}
	for _, a := range []string{"10.126.0.2/24", "2001:db8:126::2/64"} {
		if !hasAddr(e.addrs(top), "dtmove0", mustPrefix(a)) {
			t.Errorf("dtmove0 came back without %s", a)
		}
	}
	e.waitLinks(top)
	if got, err := tcpTry(top, target{Addr: mustAddr("10.126.0.1")}, probePort, 3*time.Second); err != nil || !strings.HasPrefix(got, "lan 10.126.0.2:") {
		t.Errorf("from the host, through dtmove0 moved back: %q, %v", got, err)
	}

	out, code = e.tr("down", "--netns", top)
	if code != 0 {
		t.Fatalf("tunroute down: exit %d\n%s", code, out)
	}
	if after := e.snapshot(top); after != before {
		t.Errorf("the host after down differs from before apply:\n%s", lineDiff(before, after))
	}
	if got := testns.Own(e.Prefix); !slices.Equal(got, nss) {
		t.Errorf("namespaces after down: %v, want %v", got, nss)
	}
	if owner, err := kernel.NamespaceOwner(e.NS("otherdomain")); err != nil || owner != netnsname.Name(e.NS("elsewhere")).Owner() {
		t.Errorf("another config's domain: owner %q, %v", owner, err)
	}
	if _, err := os.Stat(filepath.Join("/etc/netns", d1)); err == nil {
		t.Errorf("/etc/netns/%s is left", d1)
	}
	if out, code := e.tr("down", "--netns", top); code != 0 || !strings.Contains(out, "No changes") && strings.TrimSpace(out) != "" {
		t.Errorf("a second down: exit %d\n%s", code, out)
	}
}

// snapshot is what the test compares of a namespace: its links (name,
// kind, state, alias), addresses, the routes of every table, the rules
// and the nftables ruleset, each sorted where the kernel's order may
// change as links come and go.
func (e *env) snapshot(ns string) string {
	e.t.Helper()
	var b strings.Builder
	var links []struct {
		Name  string   `json:"ifname"`
		Flags []string `json:"flags"`
		Alias string   `json:"ifalias"`
		Info  struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(e.ip(ns, "-j", "-d", "link")), &links); err != nil {
		e.t.Fatal(err)
	}
	var lines []string
	for _, l := range links {
		lines = append(lines, fmt.Sprintf("link %s %s %v alias=%q", l.Name, l.Info.Kind, slices.Contains(l.Flags, "UP"), l.Alias))
	}
	for _, a := range e.addrs(ns) {
		lines = append(lines, fmt.Sprintf("addr %s %s %s", a.Dev, a.Prefix, a.Scope))
	}
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(e.ip(ns, fam, "route", "show", "table", "all"), "\n") {
			if l != "" {
				lines = append(lines, "route "+fam+" "+l)
			}
		}
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n" + e.ip(ns, "rule") + e.ip(ns, "-6", "rule"))
	rs, err := nft(ns, "list", "ruleset")
	if err != nil {
		e.t.Fatal(err)
	}
	b.WriteString(rs)
	return b.String()
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}
