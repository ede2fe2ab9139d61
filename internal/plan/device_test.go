package plan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

func greLink(key uint32, owned bool) state.Link {
	l := state.Link{Name: "gre1", Kind: state.KindGRE, Up: true,
		Tunnel: &state.Tunnel{Remote: netip.MustParseAddr("10.2.0.2"), IKey: key, OKey: key}}
	if owned {
		l.Alias = state.LinkAliasPrefix + "gre"
	}
	return l
}

func TestDeviceDiff(t *testing.T) {
	desired := &state.State{Links: []state.Link{greLink(5, true)}}

	// Missing: added.
	p, err := Diff(desired, &state.State{})
	if err != nil || len(p.Ops) != 1 || p.Ops[0].Action != state.Add {
		t.Fatalf("add: %v %+v", err, p)
	}
	// Same settings (observed TTL is the kernel's default): nothing.
	obs := greLink(5, true)
	obs.Tunnel.TTL = 64
	if p, err = Diff(desired, &state.State{Links: []state.Link{obs}}); err != nil || !p.Empty() {
		t.Fatalf("same: %v %s", err, p.Text())
	}
	// Another key: changed in place, and the undo puts the old key back.
	old := greLink(6, true)
	p, err = Diff(desired, &state.State{Links: []state.Link{old}})
	if err != nil || len(p.Ops) != 1 || p.Ops[0].Action != state.Replace || p.Ops[0].PrevLink.Tunnel.IKey != 6 {
		t.Fatalf("change: %v %+v", err, p)
	}
	if inv := p.Ops[0].Inverse(); inv.Link.Tunnel.IKey != 6 || inv.PrevLink.Tunnel.IKey != 5 {
		t.Fatalf("inverse: %+v", inv)
	}
	if txt := p.Text(); !strings.Contains(txt, "~ link gre1 type gre remote 10.2.0.2 key 5") || !strings.Contains(txt, "(was gre1 type gre remote 10.2.0.2 key 6") {
		t.Fatalf("text:\n%s", txt)
	}
	// Someone else's gre1: left alone, said so.
	p, err = Diff(desired, &state.State{Links: []state.Link{greLink(6, false)}})
	if err != nil || !p.Empty() || len(p.Kept) != 1 {
		t.Fatalf("foreign: %v %+v", err, p)
	}
	// Ours, of another kind: refused, nothing half done.
	vti := state.Link{Name: "gre1", Kind: state.KindVTI, Alias: state.LinkAliasPrefix + "vti", Tunnel: &state.Tunnel{}}
	if _, err = Diff(desired, &state.State{Links: []state.Link{vti}}); err == nil || !strings.Contains(err.Error(), "is a vti device and the config wants a gre device") {
		t.Fatalf("kind change: %v", err)
	}
}

func TestUserspaceWireGuardDiff(t *testing.T) {
	want := state.Link{Name: "wg0", Kind: state.KindWireGuard, Userspace: true,
		WireGuard: &state.WireGuard{PublicKey: "A", Peers: []state.WGPeer{{PublicKey: "B", Keepalive: 25,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}}}}
	desired := &state.State{Links: []state.Link{want}}
	// Not there: the daemon makes it, tunroute does not.
	if p, err := Diff(desired, &state.State{}); err != nil || !p.Empty() {
		t.Fatalf("absent: %v %+v", err, p)
	}
	// There with a learnt endpoint, another port and the allowed IPs in
	// another order: as wanted.
	have := state.Link{Name: "wg0", Kind: "tun", WireGuard: &state.WireGuard{PublicKey: "A", ListenPort: 40000,
		Peers: []state.WGPeer{{PublicKey: "B", Keepalive: 25, Endpoint: netip.MustParseAddrPort("198.51.100.2:51820"),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("0.0.0.0/0")}}}}}
	if p, err := Diff(desired, &state.State{Links: []state.Link{have}}); err != nil || !p.Empty() {
		t.Fatalf("same: %v %s", err, p.Text())
	}
	// Another key: configured (even though the link is not tunroute's).
	have.WireGuard.PublicKey = "C"
	if p, err := Diff(desired, &state.State{Links: []state.Link{have}}); err != nil || len(p.Ops) != 1 || p.Ops[0].Action != state.Replace {
		t.Fatalf("key: %v %+v", err, p)
	}
	// A preshared key, compared by its identity: asked for and missing,
	// a change; the same key, none.
	desired.Links[0].WireGuard.Peers[0].PresharedKeyID = "abc"
	have.WireGuard.PublicKey = "A"
	if p, err := Diff(desired, &state.State{Links: []state.Link{have}}); err != nil || len(p.Ops) != 1 {
		t.Fatalf("psk missing: %v %+v", err, p)
	}
	have.WireGuard.Peers[0].PresharedKeyID = "abc"
	if p, err := Diff(desired, &state.State{Links: []state.Link{have}}); err != nil || !p.Empty() {
		t.Fatalf("psk same: %v %s", err, p.Text())
	}
	// down never deletes it.
	if p := Down(&state.State{Links: []state.Link{have}}); !p.Empty() {
		t.Fatalf("down: %s", p.Text())
	}
	// A veth of that name is not a WireGuard device.
	if _, err := Diff(desired, &state.State{Links: []state.Link{{Name: "wg0", Kind: "veth"}}}); err == nil {
		t.Fatal("a veth was taken for a WireGuard device")
	}
}
