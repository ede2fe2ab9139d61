package vpntest

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
)

// coexistence: another tool's nftables table, wg-quick's rules (fwmark
// 0xca6c, suppress_prefixlength 0) and its table 51820, all there before
// tunroute's first apply, are byte for byte the same after the applies
// the hooks made, after the VPN stopped, and after `tunroute down`. The
// VPN stopping leaves the kill switch in place; `down` removes all of
// tunroute's objects and nothing else.
func (w *world) coexistence(t *testing.T) {
	w.ensureUp(t)
	w.sameForeign(t, "with the VPN up (applied by the hooks)")

	d := w.vpn.client()
	if !d.Stop(5 * time.Second) {
		t.Errorf("the %s client did not end on SIGTERM within 5 s", w.k.name)
	}
	w.settle()
	w.sameForeign(t, "after the VPN stopped (its down hooks ran)")
	if out, err := nft(w.client, "", "list", "table", "inet", "tunroute"); err != nil {
		t.Errorf("the kill switch is gone after the VPN stopped; it must stay until `tunroute down`: %v\n%s", err, out)
	}
	before := w.read(t)
	outs := reachInet(w.client)
	if d := w.read(t).sub(before); d[cClear4]+d[cClear6] != 0 {
		t.Errorf("with the VPN stopped, %d packets left in clear: %v%s", d[cClear4]+d[cClear6], d, outcomes(outs))
	}

	out, code := w.tr(t, "--run-dir", w.runDir, "down", "--netns", w.client)
	if code != 0 {
		t.Fatalf("tunroute down: exit %d\n%s", code, out)
	}
	w.sameForeign(t, "after tunroute down")
	if rules := w.ipJSON(t, "rule") + w.ipJSON(t, "-6", "rule"); rules != w.rules0 {
		t.Errorf("the rules after down differ from before the first apply:\n--- before ---\n%s\n--- after ---\n%s", w.rules0, rules)
	}
	for _, f := range []string{"-4", "-6"} {
		if owned := ip(t, w.client, f, "route", "show", "table", "all", "proto", "116"); strings.TrimSpace(owned) != "" {
			t.Errorf("tunroute's routes left after down:\n%s", owned)
		}
	}
	if out, err := nft(w.client, "", "list", "table", "inet", "tunroute"); err == nil {
		t.Errorf("tunroute's table is still there after down:\n%s", out)
	}
	// Back to the way it was: inet is reached in clear from the uplink.
	if o := tcpTry(w.client, netip.AddrPortFrom(lab.InetEth4.Addr(), echoPort)); o.err != nil || o.saw != lab.ClientEth4.Addr() {
		t.Errorf("after down, inet must be reached directly again: %v", o)
	}
}

func (w *world) sameForeign(t *testing.T, when string) {
	t.Helper()
	if got := w.foreignSnapshot(t); got != w.foreign {
		t.Errorf("other tools' objects changed %s:\n%s", when, lineDiff(w.foreign, got))
	}
}
