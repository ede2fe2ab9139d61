package vpntest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/lab"
)

// takeBack: a DHCP client replaces one of the redirect's /1 routes (the one inet is in) with
// its own (TunnelVision). Nothing leaks (the kill switch holds), but the
// next apply refuses to touch another's route; with take_back_routes it
// puts its own back and the tunnel carries traffic again.
func (w *world) takeBack(t *testing.T) {
	w.ensureUp(t)
	gw := lab.ISPC04.Addr().String()
	ip(t, w.client, "route", "replace", "128.0.0.0/1", "via", gw, "dev", "eth0", "proto", "dhcp")
	defer w.apply(t, w.cfg)
	armed(w, t, false)
	out, code := w.tr(t, "--run-dir", w.runDir, "apply", "-c", w.cfg, "--netns", w.client)
	if code == 0 || !strings.Contains(out, "not tunroute's") {
		t.Errorf("without take_back_routes the apply must refuse the hijacked route: exit %d\n%s", code, out)
	}
	cfg := filepath.Join(w.dir, "take-back.yaml")
	if err := os.WriteFile(cfg, []byte("settings:\n  take_back_routes: true\n"+w.example+selectBlock(w.k.tunnelID)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = w.tr(t, "--run-dir", w.runDir, "apply", "-c", cfg, "--netns", w.client)
	if code != 0 {
		t.Fatalf("with take_back_routes: exit %d\n%s", code, out)
	}
	got := ip(t, w.client, "route", "show", "128.0.0.0/1")
	if !strings.Contains(got, "dev "+w.k.clientDev) || strings.Contains(got, "dhcp") {
		t.Errorf("128.0.0.0/1 was not taken back: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.waitTunnel(ctx); err != nil {
		t.Error(err)
	}
	t.Logf("taken back: %s", strings.TrimSpace(got))
}
