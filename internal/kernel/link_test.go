package kernel

import (
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

func TestExecuteVethAcrossNamespaces(t *testing.T) {
	needRoot(t)
	nsA, nsB := newNS(t, "vetha"), newNS(t, "vethb")
	h := openT(t, nsA)
	pipe := &state.Link{Name: "trpipe0", Kind: "veth", Peer: "trpipe1", PeerNamespace: nsB, Up: true,
		Alias: state.LinkAliasPrefix + "pipe", MTU: 1400}
	bridge := &state.Link{Name: "trbr0", Kind: "bridge", Alias: state.LinkAliasPrefix + "br"}
	applied, err := h.Execute([]state.Op{{Action: state.Add, Link: pipe}, {Action: state.Add, Link: bridge}})
	if err != nil || !applied[0] || !applied[1] {
		t.Fatalf("Execute = %v, %v", applied, err)
	}

	var a, b []ipLink
	ipJSON(t, nsA, &a, "-d", "link", "show", "trpipe0")
	ipJSON(t, nsB, &b, "-d", "link", "show", "trpipe1")
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("ip sees %d and %d links", len(a), len(b))
	}
	for _, l := range []ipLink{a[0], b[0]} {
		if l.LinkInfo.Kind != "veth" || !has(l.Flags, "UP") || !has(l.Flags, "LOWER_UP") || l.Alias != pipe.Alias || l.MTU != 1400 {
			t.Errorf("%s: kind %q flags %v alias %q mtu %d", l.Name, l.LinkInfo.Kind, l.Flags, l.Alias, l.MTU)
		}
	}
	var br []ipLink
	ipJSON(t, nsA, &br, "-d", "link", "show", "trbr0")
	if len(br) != 1 || br[0].LinkInfo.Kind != "bridge" || has(br[0].Flags, "UP") || br[0].Alias != bridge.Alias {
		t.Errorf("bridge: %+v", br)
	}

	s := observeT(t, h, ObserveOptions{})
	var got *state.Link
	for i := range s.Links {
		if s.Links[i].Name == "trpipe0" {
			got = &s.Links[i]
		}
	}
	if got == nil || got.Peer != "trpipe1" || got.PeerNamespace != nsB || !got.Owned() || !got.Up {
		t.Errorf("observed veth: %s", js(got))
	}
	l, err := h.LinkByName("trbr0")
	if err != nil || l.Kind != "bridge" || !l.Owned() {
		t.Errorf("LinkByName(trbr0) = %s, %v", js(l), err)
	}

	applied, err = h.Execute([]state.Op{{Action: state.Delete, Link: pipe}, {Action: state.Delete, Link: bridge}})
	if err != nil || !applied[0] || !applied[1] {
		t.Fatalf("delete: Execute = %v, %v", applied, err)
	}
	for ns, out := range map[string]string{nsA: ipn(t, nsA, "link", "show"), nsB: ipn(t, nsB, "link", "show")} {
		if strings.Contains(out, "trpipe") || strings.Contains(out, "trbr0") {
			t.Errorf("%s still has links after delete:\n%s", ns, out)
		}
	}
	if _, err := h.LinkByName("trbr0"); err == nil {
		t.Error("LinkByName finds a deleted link")
	}

	// A second delete fails and says which op and why.
	applied, err = h.Execute([]state.Op{{Action: state.Delete, Link: bridge}})
	if err == nil || applied[0] || !strings.HasPrefix(err.Error(), "delete link trbr0 type bridge: no such device") {
		t.Errorf("deleting a missing link: %v, %v", applied, err)
	}
}
