package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestLookupLiveAgreesWithWholeRead: on a namespace whose main table and
// a rule's table are too big to read for one query (IPv4 and IPv6), with
// wg-quick's suppress_prefixlength rule, a mark rule, throw and
// unreachable routes, LookupLive (big tables left out, the kernel asked)
// answers every query as the whole namespace read at once does, text and
// JSON, and answers most IPv4 output queries without reading the big
// tables.
func TestLookupLiveAgreesWithWholeRead(t *testing.T) {
	testns.Need(t, "ip")
	ns := testns.NewNS(t, fmt.Sprintf("tr-eng-big-%d", os.Getpid()))
	var b strings.Builder
	b.WriteString(`link add eth0 type veth peer name isp0
link add wg0 type veth peer name wgpeer
link set eth0 up
link set isp0 up
link set wg0 up
link set wgpeer up
addr add 10.1.0.2/24 dev eth0
addr add 2001:db8:1::2/64 dev eth0 nodad
addr add 10.30.0.2/24 dev wg0
addr add 2001:db8:30::2/64 dev wg0 nodad
route add default via 10.1.0.1
route add ::/0 via 2001:db8:1::1
route add 10.128.0.0/9 dev wg0
route add 172.16.0.0/12 via 10.1.0.1 table 77
route add throw 172.16.200.0/24 table 77
route add unreachable 172.17.0.0/16 table 77
route add default dev wg0 table 78
route add ::/0 dev wg0 table 78
rule add to 172.16.0.0/12 lookup 77 pref 900
rule add fwmark 5 lookup 78 pref 800
rule add from all lookup main suppress_prefixlength 0 pref 1000
rule add from all lookup 78 pref 1001
`)
	for i := range 6000 { // main: more than kernel.DefaultWhole
		fmt.Fprintf(&b, "route add 10.%d.%d.0/24 via 10.1.0.1 proto bgp\n", 128+i/256, i%256)
	}
	for i := range 5000 {
		fmt.Fprintf(&b, "route add 2001:db8:8000:%x::/64 via 2001:db8:1::1 proto bgp\n", i)
		fmt.Fprintf(&b, "route add 172.16.%d.%d/30 dev wg0 table 77\n", i/64, i%64*4)
	}
	batch := filepath.Join(t.TempDir(), "routes")
	if err := os.WriteFile(batch, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns, "-batch", batch).CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	testns.IP(t, ns, "-6", "rule", "add", "from", "all", "lookup", "main", "suppress_prefixlength", "0", "pref", "1000")
	testns.IP(t, ns, "-6", "rule", "add", "from", "all", "lookup", "78", "pref", "1001")

	h, err := kernel.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.Observe()
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	whole, err := fib.New(st)
	if err != nil {
		t.Fatal(err)
	}
	e := New(ns, filepath.Join(t.TempDir(), "none.yaml"), t.TempDir())

	var queries []string
	for i := range 25 {
		queries = append(queries,
			fmt.Sprintf("10.%d.%d.7", 128+i*7%24, i*37%256), // main's BGP routes
			fmt.Sprintf("172.16.%d.%d", i*3%80, i*13%256),   // table 77
			fmt.Sprintf("2001:db8:8000:%x::9", i*191%5000),  // main's IPv6 routes
		)
	}
	queries = append(queries, "10.200.0.1", "10.1.0.1", "10.1.0.2", "10.30.0.9", "172.16.200.5", "172.17.3.3",
		"192.168.5.5", "2001:db8:1::1", "2001:db8:99::1", "10.130.3.3 from 10.1.0.2", "10.130.3.3 mark 5",
		"10.130.3.3 oif eth0", "10.130.3.3 oif wg0", "172.16.9.9 oif eth0", "10.130.3.3 iif isp0 from 10.1.0.9",
		"10.140.1.1 tos 0x10", "10.140.1.1 ipproto tcp dport 443", "10.140.1.1 uid 1000")
	fast, v4out := 0, 0
	var settled, unsettled []string // the queries answered without the big tables, and not
	for _, line := range queries {
		q, err := fib.ParseQuery(strings.Fields(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		a, err := e.LookupLive(q, "")
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		want := whole.Lookup(q)
		if a.Text() != want.Text() || string(a.JSON()) != string(want.JSON()) {
			t.Errorf("explain %s: live (big tables read: %v)\n%s%s\nthe whole namespace read at once\n%s%s",
				line, a.ReadBig, a.Text(), a.JSON(), want.Text(), want.JSON())
		}
		if q.To.Is4() && q.IIF == "" {
			v4out++
			if !a.ReadBig {
				fast++
				if q.OIF == "" {
					settled = append(settled, "route get "+line)
				}
			}
		} else if a.ReadBig && q.IIF == "" && q.OIF == "" {
			unsettled = append(unsettled, line)
		}
	}
	t.Logf("%d of %d IPv4 output queries answered without reading the big tables", fast, v4out)
	if fast < v4out/2 {
		t.Errorf("only %d of %d IPv4 output queries answered without reading the big tables", fast, v4out)
	}

	// explain --batch of a few lines: the queries the kernel settles, a
	// comment, a blank line and a bad query are answered one by one as a
	// read of the whole namespace answers them; one the kernel does not
	// settle, or one naming a device, sends the batch to the whole read.
	batchOf := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
	text := batchOf(append([]string{"# a few destinations", "", "route get 10.1.2.300"}, settled...)...)
	var want strings.Builder
	if _, err := whole.Batch(strings.NewReader(text), &want, fib.BatchOptions{}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := e.BatchFew([]byte(text))
	if err != nil || !ok || string(got) != want.String() {
		t.Errorf("BatchFew of %d settled queries: %v %v\n%s\nthe whole namespace read at once:\n%s", len(settled), ok, err, got, want.String())
	}
	if len(unsettled) == 0 {
		t.Fatal("no query needed the big tables")
	}
	for _, extra := range []string{unsettled[0], "10.130.3.3 iif isp0 from 10.1.0.9", "10.130.3.3 oif wg0"} {
		if got, ok, err := e.BatchFew([]byte(batchOf(append(settled, extra)...))); ok || err != nil || got != nil {
			t.Errorf("BatchFew with %q: %v %v %q, want the whole read", extra, ok, err, got)
		}
	}
	small := New(testns.NewNS(t, fmt.Sprintf("tr-eng-small-%d", os.Getpid())), filepath.Join(t.TempDir(), "none.yaml"), t.TempDir())
	if _, ok, err := small.BatchFew([]byte(text)); ok || err != nil {
		t.Errorf("BatchFew on a namespace without a big table: %v %v, want the whole read", ok, err)
	}
}
