package hook

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestRelevantKeepsWhatFactsRead: the facts (or the error) of a call
// from the relevant variables alone are those of the whole environment,
// for good and hostile calls of each kind; and the rest of the
// environment is left out.
func TestRelevantKeepsWhatFactsRead(t *testing.T) {
	noise := Env{"PATH": "/usr/bin", "HOME": "/root", "SECRET_TOKEN": "x", "untrusted_ip": "192.0.2.9", "DEVICE": "/dev/net/tun"}
	type call struct {
		name, kind, verb string
		env              Env
	}
	var calls []call
	ovpn := labOpenVPN()
	calls = append(calls, call{"openvpn lab", "openvpn", "route-up", ovpn})
	for _, k := range []string{"dev", "ifconfig_local", "route_network_1", "foreign_option_3", "trusted_port", "proto_1", "ifconfig_ipv6_netbits"} {
		e := with(ovpn, k, "hostile value; rm -rf /")
		calls = append(calls, call{"openvpn bad " + k, "openvpn", "route-up", e})
	}
	tinc := Env{"NETNAME": "home", "NAME": "client", "DEVICE": "/dev/net/tun", "INTERFACE": "tinc0", "NODE": "server",
		"REMOTEADDRESS": "198.51.100.2", "REMOTEPORT": "655", "SUBNET": "10.20.0.0/24#10"}
	for _, verb := range []string{"tinc-up", "host-up", "host-down", "subnet-up", "subnet-down", "tinc-down"} {
		calls = append(calls, call{"tinc " + verb, "tinc", verb, tinc})
		calls = append(calls, call{"tinc " + verb + " of this node", "tinc", verb, with(tinc, "NODE", "client")})
		for _, k := range []string{"INTERFACE", "NODE", "REMOTEADDRESS", "REMOTEPORT", "SUBNET"} {
			calls = append(calls, call{"tinc " + verb + " bad " + k, "tinc", verb, with(tinc, k, "bad/../value")})
		}
	}
	sw := clientEnv()
	calls = append(calls, call{"strongswan", "strongswan", "", sw})
	for _, k := range []string{"PLUTO_PEER", "PLUTO_MY_CLIENT", "PLUTO_XAUTH_ID", "PLUTO_NEWER_THING"} {
		calls = append(calls, call{"strongswan bad " + k, "strongswan", "", with(sw, k, "a\x1bb")})
	}
	for _, c := range calls {
		k, err := Lookup(c.kind)
		if err != nil {
			t.Fatal(err)
		}
		full := Env{}
		for key, v := range noise {
			full[key] = v
		}
		for key, v := range c.env {
			full[key] = v
		}
		rel := Relevant(k, full)
		for key := range noise {
			if _, kept := rel[key]; kept && c.env[key] == "" {
				t.Errorf("%s: %s is not read, yet kept", c.name, key)
			}
		}
		verb := c.verb
		if verb == "" {
			verb, _ = k.Verb(nil, full)
		}
		if c.kind == "openvpn" {
			verb, _ = k.Verb(nil, full)
		}
		if got, want := factsOf(k, verb, rel), factsOf(k, verb, full); got != want {
			t.Errorf("%s: from the relevant variables\n%s\nfrom the whole environment\n%s", c.name, got, want)
		}
	}
}

func factsOf(k Kind, verb string, env Env) string {
	v, ev, err := k.Facts(Call{VPN: "x", Verb: verb, Env: env, Setup: libipsec})
	if err != nil {
		return "error: " + err.Error()
	}
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%d %s", ev, b)
}
