package fib

import (
	"fmt"
	"strings"
)

// dualIdentity is a "dual identity" host: an outside identity O
// (198.51.100.10 on eth0) and an inside one I (10.8.0.2 on the VPN tun0),
// one table per identity, rules sending traffic from each identity to its
// table, and main sending 203.0.113.0/24 through the VPN.
func dualIdentity() *FIB {
	k := newKState(nopTB{})
	for _, c := range []string{
		"link add eth0 type veth peer name eth0p", "link set eth0 up", "link set eth0p up",
		"link add tun0 type veth peer name tun0p", "link set tun0 up", "link set tun0p up",
		"addr add 198.51.100.10/24 dev eth0", "addr add 10.8.0.2/24 dev tun0",
		"route add default via 198.51.100.1",
		"route add 203.0.113.0/24 via 10.8.0.1",
		"route add default via 10.8.0.1 dev tun0 table 10",
		"route add default via 198.51.100.1 dev eth0 table 11",
		"rule add from 10.8.0.2 iif lo pref 5000 table 10",
		"rule add from 198.51.100.10 iif lo pref 5001 table 11",
	} {
		k.ip(c)
	}
	f, err := New(k.state())
	if err != nil {
		panic(err)
	}
	return f
}

func explain(f *FIB, q string) {
	query, err := ParseQuery(strings.Fields(q))
	if err != nil {
		panic(err)
	}
	r := f.Lookup(query)
	fmt.Print(r.Text())
}

// Why does `ssh -b O` to a host behind the VPN go out eth0? The source
// O selects table 11 at rule 5001, before main's route into the tunnel.
func Example_outsideIdentity() {
	f := dualIdentity()
	explain(f, "to 203.0.113.7 from 198.51.100.10")
	// Output:
	// rule 0: from all lookup local  ->  no route in table local
	// rule 5001: from 198.51.100.10 iif lo lookup 11  ->  table 11: default via 198.51.100.1 dev eth0
	// 203.0.113.7 from 198.51.100.10 via 198.51.100.1 dev eth0, table 11, rule 5001 from 198.51.100.10 iif lo lookup 11
}

// Without a source, main decides: the VPN route, and the source chosen
// for it is the inside identity, so replies come back through the tunnel.
func Example_insideIdentity() {
	f := dualIdentity()
	explain(f, "to 203.0.113.7")
	explain(f, "to 10.8.0.2 from 203.0.113.7 iif tun0")
	// Output:
	// rule 0: from all lookup local  ->  no route in table local
	// rule 32766: from all lookup main  ->  table main: 203.0.113.0/24 via 10.8.0.1 dev tun0
	// 203.0.113.7 via 10.8.0.1 dev tun0 src 10.8.0.2, table main, rule 32766 from all lookup main
	// rule 0: from all lookup local  ->  table local: local 10.8.0.2 dev tun0 proto kernel scope host src 10.8.0.2
	// local 10.8.0.2 from 203.0.113.7 dev lo iif tun0, table local, rule 0 from all lookup local
}

// The JSON form carries `ip -j -d route get`'s keys plus the trace.
func ExampleResult_JSON() {
	f := dualIdentity()
	q, _ := ParseQuery([]string{"203.0.113.7", "from", "10.8.0.2", "mark", "0x10"})
	r := f.Lookup(q)
	fmt.Println(string(r.JSON()))
	fmt.Print(strings.ReplaceAll(r.IPText(false), " \n", "\n")) // as `ip route get` prints it
	// Output:
	// {"type":"unicast","dst":"203.0.113.7","from":"10.8.0.2","gateway":"10.8.0.1","dev":"tun0","table":"10","flags":[],"mark":16,"uid":0,"cache":[],"trace":[{"pref":0,"rule":"from all lookup local","verdict":"no route","table":"local"},{"pref":5000,"rule":"from 10.8.0.2 iif lo lookup 10","verdict":"route","table":"10","route":"default via 10.8.0.1 dev tun0"}]}
	// 203.0.113.7 from 10.8.0.2 via 10.8.0.1 dev tun0 table 10 mark 0x10 uid 0
	//     cache
}
