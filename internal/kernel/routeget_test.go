package kernel

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// RouteGet answers as `ip route get` does for the same packet: device,
// source and type, or an error when ip reports one.
func TestRouteGetAgreesWithIP(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "rget")
	ipScript(t, ns, `
link add d0 type veth peer name d1
link set d0 up
link set d1 up
addr add 192.0.2.1/24 dev d0
addr add 192.0.2.2/24 dev d1
addr add 2001:db8::1/64 dev d0 nodad
route add 198.51.100.0/24 via 192.0.2.254 dev d0
route add 203.0.113.0/24 dev d1 table 100 src 192.0.2.2
rule add fwmark 7 lookup 100 pref 100
rule add uidrange 1234-1234 lookup 100 pref 101
rule add from 192.0.2.2 lookup 100 pref 102
route add blackhole 203.0.113.64/26
`)
	h := openT(t, ns)
	asker, err := h.NewRouteAsker()
	if err != nil {
		t.Fatal(err)
	}
	uid := uint32(1234)
	for _, tc := range []struct {
		args []string
		q    RouteQuery
	}{
		{[]string{"198.51.100.7"}, RouteQuery{Dst: netip.MustParseAddr("198.51.100.7")}},
		{[]string{"192.0.2.1"}, RouteQuery{Dst: netip.MustParseAddr("192.0.2.1")}},
		{[]string{"192.0.2.255"}, RouteQuery{Dst: netip.MustParseAddr("192.0.2.255")}},
		{[]string{"2001:db8::9"}, RouteQuery{Dst: netip.MustParseAddr("2001:db8::9")}},
		{[]string{"203.0.113.5"}, RouteQuery{Dst: netip.MustParseAddr("203.0.113.5")}},
		{[]string{"203.0.113.5", "mark", "7"}, RouteQuery{Dst: netip.MustParseAddr("203.0.113.5"), Mark: 7}},
		{[]string{"203.0.113.5", "uid", "1234"}, RouteQuery{Dst: netip.MustParseAddr("203.0.113.5"), UID: &uid}},
		{[]string{"203.0.113.5", "from", "192.0.2.2"}, RouteQuery{Dst: netip.MustParseAddr("203.0.113.5"), Src: netip.MustParseAddr("192.0.2.2")}},
		{[]string{"198.51.100.7", "from", "192.0.2.9", "iif", "d1"}, RouteQuery{Dst: netip.MustParseAddr("198.51.100.7"), Src: netip.MustParseAddr("192.0.2.9"), IIF: "d1"}},
		{[]string{"203.0.113.70"}, RouteQuery{Dst: netip.MustParseAddr("203.0.113.70")}},
	} {
		name := strings.Join(tc.args, " ")
		out, ipErr := exec.Command("ip", append([]string{"-n", ns, "-j", "route", "get"}, tc.args...)...).CombinedOutput()
		got, err := h.RouteGet(tc.q)
		// A batch's asker (links and nexthops read once) answers alike.
		if ag, aerr := asker.RouteGet(tc.q); (aerr == nil) != (err == nil) || ag != got {
			t.Errorf("%s: RouteAsker.RouteGet %+v, %v; Handle.RouteGet %+v, %v", name, ag, aerr, got, err)
		}
		m1, e1 := h.RouteMatch(tc.q)
		if m2, e2 := asker.RouteMatch(tc.q); fmt.Sprint(m1, e1) != fmt.Sprint(m2, e2) {
			t.Errorf("%s: RouteAsker.RouteMatch %v, %v; Handle.RouteMatch %v, %v", name, m2, e2, m1, e1)
		}
		if ipErr != nil {
			if err == nil {
				t.Errorf("%s: ip says %s; RouteGet %+v", name, strings.TrimSpace(string(out)), got)
			}
			continue
		}
		var want []struct {
			Type    string `json:"type"`
			Dev     string `json:"dev"`
			PrefSrc string `json:"prefsrc"`
		}
		if err := json.Unmarshal(out, &want); err != nil || len(want) != 1 {
			t.Fatalf("%s: ip -j route get: %v: %s", name, err, out)
		}
		w := want[0]
		if w.Type == "" {
			w.Type = "unicast"
		}
		src := ""
		if got.Src.IsValid() {
			src = got.Src.String()
		}
		if err != nil || got.Dev != w.Dev || src != w.PrefSrc || got.Type != w.Type {
			t.Errorf("%s: RouteGet %+v, %v; ip: dev %s prefsrc %s type %s", name, got, err, w.Dev, w.PrefSrc, w.Type)
		}
	}
}
