package kernel

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// The kernel-only kinds are created for real in the VM (scripts/vmtest.sh,
// TestVMDevices); here the messages are checked: what tunroute encodes for
// a device decodes back, through the observer's decoder, to the same
// settings.
func TestTunnelEncodeDecodeRoundTrip(t *testing.T) {
	a := netip.MustParseAddr
	cases := []state.Link{
		{Name: "ipsec0", Kind: state.KindXFRM, Tunnel: &state.Tunnel{IfID: 42}},
		{Name: "vti0", Kind: state.KindVTI, Tunnel: &state.Tunnel{Local: a("198.51.100.2"), Remote: a("203.0.113.9"), IKey: 0x100, OKey: 0x200}},
		{Name: "vti6", Kind: state.KindVTI6, Tunnel: &state.Tunnel{Local: a("2001:db8::1"), Remote: a("2001:db8::2"), IKey: 7, OKey: 7}},
		{Name: "gre1", Kind: state.KindGRE, Tunnel: &state.Tunnel{Local: a("10.1.0.2"), Remote: a("10.2.0.2"), IKey: 5, OKey: 5, TTL: 64}},
		{Name: "gre2", Kind: state.KindGRE, Tunnel: &state.Tunnel{Remote: a("10.2.0.2"), OKey: 9}},
		{Name: "g6", Kind: state.KindIP6GRE, Tunnel: &state.Tunnel{Remote: a("2001:db8::9"), TTL: 10}},
	}
	for _, l := range cases {
		var e encoder
		if err := e.encodeNewLink(&l, newLinkArgs{peerNSFd: -1, nsFd: -1}, 1); err != nil {
			t.Fatalf("%s: %v", l.Name, err)
		}
		got, ok := decodeLink(e.b[unix.SizeofNlMsghdr:])
		if !ok {
			t.Fatalf("%s: not decodable", l.Name)
		}
		if got.Name != l.Name || got.Kind != l.Kind {
			t.Errorf("%s: decoded as %s type %s", l.Name, got.Name, got.Kind)
		}
		if !l.Tunnel.Satisfies(got.Tunnel) || !got.Tunnel.Satisfies(l.Tunnel) {
			t.Errorf("%s: encoded %+v, decoded %+v", l.Name, *l.Tunnel, *got.Tunnel)
		}
	}
}

func TestTunnelRefusesMixedFamilies(t *testing.T) {
	a := netip.MustParseAddr
	for _, c := range []struct {
		l    state.Link
		want string
	}{
		{state.Link{Name: "x", Kind: state.KindGRE, Tunnel: &state.Tunnel{Remote: a("2001:db8::1")}}, "use ip6gre"},
		{state.Link{Name: "x", Kind: state.KindVTI6, Tunnel: &state.Tunnel{Remote: a("10.0.0.1")}}, "IPv6 addresses"},
		{state.Link{Name: "x", Kind: state.KindXFRM, Tunnel: &state.Tunnel{}}, "if_id"},
		{state.Link{Name: "x", Kind: state.KindXFRM, Tunnel: &state.Tunnel{IfID: 1, Remote: a("10.0.0.1")}}, "only an if_id"},
	} {
		var e encoder
		err := e.encodeNewLink(&c.l, newLinkArgs{peerNSFd: -1, nsFd: -1}, 1)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: error %v, want one saying %q", c.l.Kind, *c.l.Tunnel, err, c.want)
		}
	}
}
