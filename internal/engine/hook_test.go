package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/hook"
)

const openvpnExample = "../../examples/openvpn-route-noexec.yaml"

// routeUp is what OpenVPN gives a route-up script for labClient's tun0,
// with variables tunroute does not read.
func routeUp() hook.Env {
	return hook.Env{"script_type": "route-up", "dev": "tun0", "ifconfig_local": "10.8.0.2", "ifconfig_netmask": "255.255.255.0",
		"route_vpn_gateway": "10.8.0.1", "trusted_ip": "198.51.100.2", "trusted_port": "1194", "proto_1": "udp",
		"route_net_gateway": "10.1.0.1", "foreign_option_1": "dhcp-option DNS 10.8.0.1",
		"PATH": "/usr/bin", "password": "hunter2", "common_name": "server"}
}

func openvpnCall(env hook.Env) HookCall {
	k, _ := hook.Lookup("openvpn")
	return HookCall{Kind: k, Env: env}
}

// TestValidateHookTouchesNothing: checking a call takes no lock, reads no
// facts and changes nothing; it keeps only the variables OpenVPN's calls
// carry that tunroute reads; a hostile value is refused, named.
func TestValidateHookTouchesNothing(t *testing.T) {
	h := newMemHost(labClient())
	e := memEngine(t, h, openvpnExample)
	v, cfg, err := e.ValidateHook(openvpnCall(routeUp()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil || v.VPN != "work" || v.Kind != "openvpn" || v.Verb != "route-up" || !strings.HasSuffix(v.Config, "/examples/openvpn-route-noexec.yaml") {
		t.Errorf("checked call: %+v", v)
	}
	for _, k := range []string{"PATH", "password", "common_name"} {
		if _, ok := v.Env[k]; ok {
			t.Errorf("%s is kept, but tunroute does not read it", k)
		}
	}
	if v.Env["dev"] != "tun0" || len(v.Env) != 10 {
		t.Errorf("env: %v", v.Env)
	}
	bad := routeUp()
	bad["route_vpn_gateway"] = "10.8.0.1; reboot"
	if _, _, err := e.ValidateHook(openvpnCall(bad)); err == nil || !strings.Contains(err.Error(), "environment variable route_vpn_gateway=") {
		t.Errorf("a hostile value: %v", err)
	}
	if h.n != 0 {
		t.Errorf("checking changed the host: %v", h.log)
	}
	if left, _ := os.ReadDir(e.RunDir); len(left) != 0 {
		t.Errorf("checking wrote under the run directory: %v", left)
	}
	// A verb tunroute ignores needs no config.
	e.ConfigPath = "/nonexistent/tunroute.yaml"
	if v, _, err := e.ValidateHook(openvpnCall(hook.Env{"script_type": "ipchange"})); err != nil || !v.Ignored {
		t.Errorf("ipchange: %+v %v", v, err)
	}
}

// TestRecordHookIsHook: checking then recording does what Hook does.
func TestRecordHookIsHook(t *testing.T) {
	h1 := newMemHost(labClient())
	e1 := memEngine(t, h1, openvpnExample)
	r1, err := e1.Hook(openvpnCall(routeUp()))
	if err != nil {
		t.Fatal(err)
	}
	h2 := newMemHost(labClient())
	e2 := memEngine(t, h2, openvpnExample)
	v, cfg, err := e2.ValidateHook(openvpnCall(routeUp()))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e2.RecordHook(cfg, v)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Said != r2.Said || r1.Said != "vpn work (openvpn route-up) on tun0" {
		t.Errorf("said %q and %q", r1.Said, r2.Said)
	}
	strip := func(log []string, dir string) []string {
		var out []string
		for _, l := range log {
			out = append(out, strings.ReplaceAll(l, dir, "RUN"))
		}
		return out
	}
	if a, b := strip(h1.log, e1.RunDir), strip(h2.log, e2.RunDir); len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Errorf("Hook did:\n  %s\nValidateHook and RecordHook did:\n  %s", strings.Join(a, "\n  "), strings.Join(b, "\n  "))
	}
}

// TestRecordHookChecksAgain: a call that comes from a socket is checked
// like one from an environment: a value changed after the check, a vpn
// the config does not have, a verb of another kind are refused, and
// nothing changes.
func TestRecordHookChecksAgain(t *testing.T) {
	h := newMemHost(labClient())
	e := memEngine(t, h, openvpnExample)
	cfg, err := e.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	good := func() *ValidHook {
		v, _, err := e.ValidateHook(openvpnCall(routeUp()))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name   string
		change func(v *ValidHook)
		want   string
	}{
		{"hostile device", func(v *ValidHook) { v.Env["dev"] = "tun0;reboot" }, `environment variable dev="tun0;reboot"`},
		{"unknown vpn", func(v *ValidHook) { v.VPN = "home" }, `has no openvpn vpn named "home"`},
		{"unknown kind", func(v *ValidHook) { v.Kind = "pptp" }, `"pptp" is not a VPN tunroute has a hook for`},
		{"tinc verb", func(v *ValidHook) { v.Verb = "host-up" }, `script_type="host-up": not an OpenVPN script type`},
	} {
		v := good()
		c.change(v)
		if _, err := e.RecordHook(cfg, v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if h.n != 0 {
		t.Errorf("a refused call changed the host: %v", h.log)
	}
}

// TestValidateStrongSwanHook: charon names the connection; only the
// PLUTO_* variables are kept (every one is checked); the check needs no
// facts of earlier calls (the pairs of selectors so far).
func TestValidateStrongSwanHook(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "tunroute.yaml")
	os.WriteFile(cfg, []byte("vpns:\n  - name: feas\n    type: strongswan\n    device: ipsec0\nidentities:\n  - name: inside\n    vpn: feas\nroutes:\n  - to: [10.50.0.0/16]\n    via: inside\n"), 0o644)
	h := newMemHost(labClient())
	e := memEngine(t, h, cfg)
	k, _ := hook.Lookup("strongswan")
	env := hook.Env{"PLUTO_VERSION": "1.1", "PLUTO_VERB": "up-client", "PLUTO_CONNECTION": "feas", "PLUTO_PROTO": "esp",
		"PLUTO_ME": "10.1.0.2", "PLUTO_PEER": "198.51.100.2", "PLUTO_MY_CLIENT": "10.40.0.1/32", "PLUTO_PEER_CLIENT": "10.50.0.0/16",
		"PATH": "/usr/bin", "HOME": "/root"}
	v, _, err := e.ValidateHook(HookCall{Kind: k, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if v.VPN != "feas" || v.Verb != "up-client" || len(v.Env) != 8 || v.Env["PATH"] != "" {
		t.Errorf("checked call: %+v", v)
	}
	env["PLUTO_XAUTH_ID"] = "x\x1b[2J"
	if _, _, err := e.ValidateHook(HookCall{Kind: k, Env: env}); err == nil || !strings.Contains(err.Error(), "PLUTO_XAUTH_ID") {
		t.Errorf("a control character in a variable tunroute does not use: %v", err)
	}
	if h.n != 0 {
		t.Errorf("checking changed the host: %v", h.log)
	}
}
