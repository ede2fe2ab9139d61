package domaintest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openvpnEnv is what OpenVPN gives its scripts (topology subnet), for a
// tunnel device dev.
func openvpnEnv(scriptType, dev string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "script_type=" + scriptType, "dev=" + dev, "dev_type=tun",
		"tun_mtu=1500", "script_context=init", "ifconfig_local=10.8.0.2", "ifconfig_netmask=255.255.255.0",
		"route_vpn_gateway=10.8.0.1", "trusted_ip=198.51.100.2", "trusted_port=1194", "proto_1=udp",
		"remote_1=198.51.100.2", "remote_port_1=1194", "TUNROUTE_VPN=work"}
}

// TestHookInsideDomain: a VPN daemon run inside a domain makes its tunnel
// there and runs its hook there, without --netns: the hook finds the
// namespace whose config has the domain (the domain's mark), stores the
// facts with that config's and applies it, so the domain routes through
// the tunnel; the down verb withdraws the routes again.
func TestHookInsideDomain(t *testing.T) {
	hookInsideDomain(t, newEnv(t, "hk"), nil)
}

// hookInsideDomain is the story of TestHookInsideDomain; started (if not
// nil) runs after the first apply, with the top namespace and the config.
func hookInsideDomain(t *testing.T, e *env, started func(top, cfg string)) {
	top, far, inner := e.NS("top"), e.NS("far"), e.NS("inner")
	e.addNS("top", "far")
	cfg := e.config("hook-inside.yaml", nil)
	e.apply(cfg, top)
	if started != nil {
		started(top, cfg)
	}
	// The daemon's tunnel, made inside the domain (a veth standing in).
	e.veth(inner, "dttun0", []string{"10.8.0.2/24"}, far, "srv0", []string{"10.8.0.1/24"})
	e.ip(far, "addr", "add", "10.99.1.1/32", "dev", "lo")
	e.serve(far, "far", probePort)
	e.waitLinks(inner, far)

	hook := func(verb string) {
		t.Helper()
		argv := []string{e.Bin, "exec", inner, "--", e.Bin, "--run-dir", e.RunDir, "hook", "openvpn", "-c", cfg}
		out, code, err := e.run(argv, openvpnEnv(verb, "dttun0"))
		if err != nil || code != 0 {
			t.Fatalf("hook openvpn %s inside %s: exit %d, %v\n%s", verb, inner, code, err, out)
		}
	}
	hook("route-up")
	if _, err := os.Stat(filepath.Join(e.RunDir, "facts", "ns-"+top, "work.json")); err != nil {
		t.Errorf("the facts are not stored with the top's: %v", err)
	}
	if got := e.ip(inner, "route", "show", "10.99.0.0/16"); !strings.Contains(got, "via 10.8.0.1 dev dttun0") {
		t.Errorf("the domain's route through the tunnel: %q", got)
	}
	if out, code := e.exec(inner, nil, "tcp", e.helper, "10.99.1.1:7000"); code != 0 || !strings.HasPrefix(out, "far 10.8.0.2:") {
		t.Errorf("from the domain through the tunnel: exit %d, %q", code, out)
	}
	if out, code := e.tr("plan", "-c", cfg, "--netns", top); code != 0 {
		t.Errorf("plan after the hook: exit %d\n%s", code, out)
	}
	hook("down")
	if got := e.ip(inner, "route", "show", "10.99.0.0/16"); got != "" {
		t.Errorf("after the down hook, the domain still routes through the tunnel: %q", got)
	}
}
