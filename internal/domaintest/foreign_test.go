package domaintest

import (
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/testns"
)

// TestForeignPipeDevice: a pipe whose device exists in the namespace of
// its end and is not tunroute's (here: a pipe named after a device of
// the top namespace, whose top end takes the pipe's name) is refused by
// plan and apply with the config's file, line and column, and nothing
// changes: the device keeps its addresses, no namespace is made. The
// same name for a pipe between two domains is no clash: those ends live
// in the domains' namespaces.
func TestForeignPipeDevice(t *testing.T) {
	e := newEnv(t, "fd")
	top := e.NS("top")
	e.addNS("top", "other")
	e.veth(top, "dtforeign1", []string{"10.252.9.1/30"}, e.NS("other"), "eth0", []string{"10.252.9.2/30"})
	before := e.snapshot(top)
	cfg := e.configAs("foreign-host.yaml", "foreign.yaml", map[string]any{"Dev": "dtforeign1", "A": "host"})
	want := "foreign-host.yaml:8:9: pipes[0].a.device: veth dtforeign1 exists in namespace " + top + " and is not tunroute's"
	for _, cmd := range []string{"plan", "apply"} {
		out, code := e.tr(cmd, "-c", cfg, "--netns", top)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("tunroute %s with a pipe end on the foreign dtforeign1: exit %d\n%s\nwant a failure saying %q", cmd, code, out, want)
		}
	}
	if left := testns.Own(e.NS("d")); len(left) > 0 {
		t.Errorf("namespaces made by a refused apply: %v", left)
	}
	if after := e.snapshot(top); after != before {
		t.Errorf("a refused apply changed the top namespace:\n%s", lineDiff(before, after))
	}

	cfg = e.configAs("foreign-d1.yaml", "foreign.yaml", map[string]any{"Dev": "dtforeign1", "A": e.NS("d1")})
	e.apply(cfg, top)
	if after := e.snapshot(top); after != before {
		t.Errorf("a pipe between two domains changed the top namespace:\n%s", lineDiff(before, after))
	}
}
