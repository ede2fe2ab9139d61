package health

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/tunroute/tunroute/internal/compile"
)

func TestAbandoned(t *testing.T) {
	p := netip.MustParsePrefix
	ids := []compile.Identity{{Name: "isp1", Addrs: []netip.Prefix{p("10.1.0.2/24"), p("2001:db8:1::2/64")}},
		{Name: "isp2", Addrs: []netip.Prefix{p("10.2.0.2/24")}}}
	res := func(groups ...compile.GroupState) *compile.Result {
		return &compile.Result{Identities: ids, Groups: groups}
	}
	fo := func(active string) compile.GroupState {
		return compile.GroupState{Name: "uplinks", Kind: "failover", Active: []string{active}}
	}
	bal := func(active ...string) compile.GroupState {
		return compile.GroupState{Name: "shared", Kind: "balance", Active: active}
	}
	for _, c := range []struct {
		name          string
		before, after *compile.Result
		want          []netip.Addr
	}{
		{"first apply", nil, res(fo("isp1")), nil},
		{"no change", res(fo("isp1")), res(fo("isp1")), nil},
		{"failover", res(fo("isp1")), res(fo("isp2")), []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("2001:db8:1::2")}},
		{"back", res(fo("isp2")), res(fo("isp1")), []netip.Addr{netip.MustParseAddr("10.2.0.2")}},
		{"balance member dropped", res(bal("isp1", "isp2")), res(bal("isp2")), []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("2001:db8:1::2")}},
		{"still active elsewhere", res(fo("isp1"), bal("isp1", "isp2")), res(fo("isp2"), bal("isp1", "isp2")), []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("2001:db8:1::2")}},
	} {
		if got := Abandoned(c.before, c.after); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAbandonedByNamespace: a failover inside a routing domain forgets
// the connections in the domain's namespace, the top one's in its own.
func TestAbandonedByNamespace(t *testing.T) {
	p := netip.MustParsePrefix
	res := func(active string) *compile.Result {
		return &compile.Result{Identities: []compile.Identity{{Name: "a", Addrs: []netip.Prefix{p("10.1.0.2/24")}}, {Name: "b", Addrs: []netip.Prefix{p("10.2.0.2/24")}}},
			Groups: []compile.GroupState{{Name: "g", Kind: "failover", Active: []string{active}}}}
	}
	sys := func(top, dom string) *compile.System {
		return &compile.System{Domains: []compile.Domain{{Name: "host", Netns: "", Result: res(top)}, {Name: "dom", Netns: "tr-dom", Result: res(dom)}}}
	}
	got := AbandonedByNamespace(sys("a", "a"), sys("a", "b"))
	want := map[string][]netip.Addr{"tr-dom": {netip.MustParseAddr("10.1.0.2")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("domain failover: %v, want %v", got, want)
	}
	got = AbandonedByNamespace(sys("a", "b"), sys("b", "b"))
	want = map[string][]netip.Addr{"": {netip.MustParseAddr("10.1.0.2")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("top failover: %v, want %v", got, want)
	}
	if got := AbandonedByNamespace(nil, sys("a", "a")); len(got) != 0 {
		t.Errorf("first apply: %v", got)
	}
}
