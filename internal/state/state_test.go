package state

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func sample() *State {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	return &State{
		Version: Version, Namespace: "tr-x",
		Links: []Link{{Index: 1, Name: "lo", Up: true, Carrier: true, Loopback: true},
			{Index: 2, Name: "eth0", Kind: "veth", Up: true, Alias: LinkAliasPrefix + "x"}},
		Addrs: []Addr{{Dev: "eth0", Index: 2, Prefix: p("10.1.0.2/24"), Broadcast: a("10.1.0.255"),
			Flags: AddrNoPrefixRoute | AddrSecondary, Proto: Proto, ValidLft: Forever}},
		Routes: []Route{
			{Table: 1000, Type: RouteUnicast, Dst: p("0.0.0.0/0"), Protocol: Proto, PrefSrc: a("10.1.0.2"),
				Flags: NexthopOnlink, Nexthops: []Nexthop{{Gateway: a("10.1.0.1"), Dev: "eth0", Flags: NexthopOnlink | NexthopDead}}},
			{Table: 254, Type: RouteBlackhole, Dst: p("2001:db8::/32"), Src: p("2001:db8:1::/48"), Metric: 1024, Protocol: 4},
			{Table: 254, Type: RouteUnicast, Dst: p("10.9.0.0/16"), Protocol: 0x99,
				Nexthops: []Nexthop{{Gateway: a("10.1.0.1"), Dev: "eth0", Weight: 3}, {Gateway: a("fe80::1"), Dev: "eth0"}}},
		},
		Rules: []Rule{
			{Family: 4, Priority: 5000, Src: p("10.1.0.2/32"), IIF: "lo", Action: ActionLookup, Table: 1000,
				SuppressPrefixLen: -1, SuppressIfGroup: -1, Protocol: Proto, Mark: 0x10, Mask: 0xf0,
				DPort: &PortRange{22, 23}, UID: &UIDRange{1000, 1999}, IPProto: 6},
			{Family: 6, Priority: 100, Action: ActionGoto, Goto: 200, Unresolved: true, SuppressPrefixLen: 0, SuppressIfGroup: -1},
		},
		Sysctls: map[string]string{"net.ipv4.conf.all.rp_filter": "2"},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	s := sample()
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type": "blackhole"`, `"protocol": "tunroute"`, `"flags": [`, `"onlink"`,
		`"secondary"`, `"noprefixroute"`, `"action": "goto"`, `"protocol": "153"`, `"scope": "global"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, buf.String())
		}
	}
	back, err := Parse(buf.Bytes(), "s.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip changed the state:\n%+v\n%+v", back, s)
	}
}

func TestParseErrors(t *testing.T) {
	good := func() string {
		var buf bytes.Buffer
		sample().Write(&buf)
		return buf.String()
	}()
	cases := []struct{ data, want string }{
		{"", "s.json: empty snapshot"},
		{"{\n  \"version\": 1,\n  \"links\": [\n", "s.json: truncated snapshot"},
		{"{\n  \"version\": \"one\"\n}", "s.json:2:19: version: cannot use string as int"},
		{"{\n  \"version\": 1,\n  \"bogus\": 3\n}", `s.json:3:3: unknown field "bogus"`},
		{"{\"version\": 2}", "s.json: version: got 2, this tunroute reads version 1"},
		{"{\"version\": 1, \"links\": [{\"index\": 1, \"name\": \"lo\"}, {\"index\": 1, \"name\": \"eth0\"}]}", "s.json: links[1] eth0: index 1 is not a unique positive number"},
		{"{\"version\": 1, \"addrs\": [{\"dev\": \"eth9\", \"prefix\": \"10.0.0.1/8\"}]}", `s.json: addrs[0] 10.0.0.1/8: dev "eth9" is not among links`},
		{"{\"version\": 1, \"routes\": [{\"table\": 254, \"type\": \"unicast\", \"dst\": \"10.0.0.1/8\"}]}", "s.json: routes[0]: dst 10.0.0.1/8 has host bits set"},
		{"{\"version\": 1, \"routes\": [{\"table\": 254, \"type\": \"sideways\", \"dst\": \"10.0.0.0/8\"}]}", `s.json:1:50: unknown value "sideways"`},
		{"{\"version\": 1, \"routes\": [{\"table\": 254, \"type\": \"unicast\", \"dst\": \"10.0.0.0/8\", \"nexthops\": [{\"dev\": \"eth0\"}]}]}", `s.json: routes[0]: 10.0.0.0/8: nexthops[0]: dev "eth0" is not among links`},
		{"{\"version\": 1, \"rules\": [{\"family\": 5, \"priority\": 1, \"action\": \"nop\"}]}", "s.json: rules[0]: pref 1: family must be 4 or 6, got 5"},
		{"{\"version\": 1, \"rules\": [{\"family\": 6, \"priority\": 1, \"action\": \"nop\", \"from\": \"10.0.0.0/8\"}]}", "s.json: rules[0]: pref 1: from prefix is not IPv6"},
		{good + "{}", "s.json:" + lineOf(good) + ":1: unexpected data after the snapshot object"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.data), "s.json")
		if err == nil || err.Error() != tc.want {
			t.Errorf("%.60q:\ngot  %v\nwant %s", tc.data, err, tc.want)
		}
	}
}

func lineOf(s string) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + itoa(strings.Count(s, "\n")+1))
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func TestKeysAndEqual(t *testing.T) {
	s := sample()
	r := s.Routes[0]
	o := r
	o.Nexthops = []Nexthop{{Gateway: r.Nexthops[0].Gateway, Dev: "eth0", Weight: 1, Flags: NexthopOnlink | NexthopLinkdown}}
	if !r.Equal(&o) {
		t.Error("kernel-set flags and weight 1 vs 0 must not make routes differ")
	}
	o.Nexthops[0].Gateway = netip.MustParseAddr("10.1.0.9")
	if r.Equal(&o) {
		t.Error("a different gateway must make routes differ")
	}
	bh := s.Routes[1]
	bh2 := bh
	bh2.Nexthops = []Nexthop{{Dev: "lo"}}
	if !bh.Equal(&bh2) {
		t.Error("IPv6 reports error routes with dev lo; that must not count")
	}
	x := s.Rules[0]
	y := x
	y.DPort = &PortRange{22, 23}
	if x.Key() != y.Key() {
		t.Error("rule keys must compare port ranges by value")
	}
	y.Mask = 0
	y.Mark = 0x10
	x.Mask = 0xffffffff
	if x.Key() != y.Key() {
		t.Error("a mark without mask means mask 0xffffffff")
	}
}

func TestOpInverse(t *testing.T) {
	s := sample()
	a, b := &s.Routes[0], &s.Routes[2]
	op := Op{Action: Replace, Route: a, PrevRoute: b}
	inv := op.Inverse()
	if inv.Action != Replace || inv.Route != b || inv.PrevRoute != a {
		t.Errorf("inverse of replace: %+v", inv)
	}
	if (Op{Action: Add, Rule: &s.Rules[0]}).Inverse().Action != Delete {
		t.Error("inverse of add must be delete")
	}
	if got := (Op{Action: Add, Rule: &s.Rules[0]}).String(); got != "add rule pref 5000 from 10.1.0.2/32 fwmark 0x10/0xf0 iif lo uidrange 1000-1999 ipproto 6 dport 22-23 lookup 1000" {
		t.Errorf("rule text: %s", got)
	}
	if got := (Op{Action: Delete, Route: &s.Routes[2]}).String(); got != "delete route 10.9.0.0/16 nexthop via 10.1.0.1 dev eth0 weight 3 nexthop via inet6 fe80::1 dev eth0 table main proto 153" {
		t.Errorf("route text: %s", got)
	}
}
