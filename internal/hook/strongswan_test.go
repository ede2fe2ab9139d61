package hook

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/facts"
)

// clientEnv is what charon 5.9.8 with kernel-libipsec gave the client's
// updown (lab-notes.md, item 5).
func clientEnv() Env {
	return Env{"PLUTO_VERSION": "1.1", "PLUTO_VERB": "up-client", "PLUTO_CONNECTION": "feas", "PLUTO_INTERFACE": "eth0",
		"PLUTO_REQID": "1", "PLUTO_PROTO": "esp", "PLUTO_UNIQUEID": "1", "PLUTO_UDP_ENC": "4500", "PLUTO_ME": "10.1.0.2",
		"PLUTO_MY_ID": "client@feas", "PLUTO_MY_CLIENT": "10.40.0.1/32", "PLUTO_MY_PORT": "0", "PLUTO_MY_PROTOCOL": "0",
		"PLUTO_MY_SOURCEIP": "10.40.0.1", "PLUTO_MY_SOURCEIP4_1": "10.40.0.1", "PLUTO_PEER": "198.51.100.2",
		"PLUTO_PEER_ID": "server@feas", "PLUTO_PEER_CLIENT": "0.0.0.0/0", "PLUTO_PEER_PORT": "0", "PLUTO_PEER_PROTOCOL": "0",
		"PATH": "/usr/bin"}
}

func with(e Env, kv ...string) Env {
	out := Env{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00delete" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

var libipsec = StrongSwanSetup{Device: "ipsec0"}

func TestStrongSwanClient(t *testing.T) {
	v, ev, err := StrongSwan("work", clientEnv(), nil, libipsec)
	if err != nil || ev != Up {
		t.Fatal(ev, err)
	}
	if v.Device != "ipsec0" || !slices.Equal(v.Addrs, []netip.Prefix{netip.MustParsePrefix("10.40.0.1/32")}) || len(v.Routes) != 0 {
		t.Fatalf("%+v", v)
	}
	peer := netip.MustParseAddr("198.51.100.2")
	want := []facts.Endpoint{{Addr: peer, Port: 500, Proto: "udp"}, {Addr: peer, Port: 4500, Proto: "udp"}, {Addr: peer, Proto: "esp"}}
	if !slices.Equal(v.Servers, want) {
		t.Fatalf("servers %+v", v.Servers)
	}
	// The same call again (a rekey, a repeated up): the same facts.
	again, ev, err := StrongSwan("work", clientEnv(), v, libipsec)
	if err != nil || ev != Up || !slices.Equal(again.Selectors, v.Selectors) || !slices.Equal(again.Servers, v.Servers) || !slices.Equal(again.Addrs, v.Addrs) {
		t.Fatalf("a repeated up changed the facts: %+v -> %+v (%v)", v, again, err)
	}
	// A second pair, split: its peer selector is a route.
	two, ev, err := StrongSwan("work", with(clientEnv(), "PLUTO_PEER_CLIENT", "203.0.113.0/24"), again, libipsec)
	if err != nil || ev != Up || len(two.Selectors) != 2 || !slices.Equal(two.Routes, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}) {
		t.Fatalf("%+v %v", two, err)
	}
	// One pair goes: still up, its route gone.
	one, ev, err := StrongSwan("work", with(clientEnv(), "PLUTO_VERB", "down-client", "PLUTO_PEER_CLIENT", "203.0.113.0/24"), two, libipsec)
	if err != nil || ev != Up || len(one.Selectors) != 1 || len(one.Routes) != 0 {
		t.Fatalf("%+v %v %v", one, ev, err)
	}
	// The last goes: down, the servers kept.
	none, ev, err := StrongSwan("work", with(clientEnv(), "PLUTO_VERB", "down-client"), one, libipsec)
	if err != nil || ev != Down || len(none.Selectors) != 0 || len(none.Servers) != 3 {
		t.Fatalf("%+v %v %v", none, ev, err)
	}
}

func TestStrongSwanRouteBasedDevices(t *testing.T) {
	setup := StrongSwanSetup{Devices: []StrongSwanDevice{{Name: "ipsec7", Kind: "xfrm", IfID: 7}, {Name: "vti0", Kind: "vti", Mark: 0x200}}}
	v, _, err := StrongSwan("w", with(clientEnv(), "PLUTO_IF_ID_IN", "7", "PLUTO_IF_ID_OUT", "7"), nil, setup)
	if err != nil || v.Device != "ipsec7" {
		t.Fatalf("xfrm: %+v %v", v, err)
	}
	v, _, err = StrongSwan("w", with(clientEnv(), "PLUTO_MARK_IN", "256/0x00000f00", "PLUTO_MARK_OUT", "512/0x00000f00"), nil, setup)
	if err != nil || v.Device != "vti0" {
		t.Fatalf("vti: %+v %v", v, err)
	}
	if _, _, err = StrongSwan("w", with(clientEnv(), "PLUTO_IF_ID_OUT", "8"), nil, setup); err == nil || !strings.Contains(err.Error(), "PLUTO_IF_ID_OUT=\"8\": no xfrm device") {
		t.Fatalf("unknown if_id: %v", err)
	}
	if _, _, err = StrongSwan("w", clientEnv(), nil, StrongSwanSetup{}); err == nil || !strings.Contains(err.Error(), "ipsec0") {
		t.Fatalf("no device: %v", err)
	}
}

func TestHostileStrongSwan(t *testing.T) {
	for _, c := range []struct{ k, v, want string }{
		{"PLUTO_VERB", "prepare-host", "not an updown verb"},
		{"PLUTO_VERB", "\x00delete", "PLUTO_VERB: missing"},
		{"PLUTO_VERSION", "2.0", "not charon's updown version"},
		{"PLUTO_CONNECTION", "a;rm -rf /", "not a connection name"},
		{"PLUTO_INTERFACE", "eth0 && reboot", "not an interface name"},
		{"PLUTO_ME", "10.1.0.2; id", "PLUTO_ME=\"10.1.0.2; id\": not an IP address"},
		{"PLUTO_PEER", "0.0.0.0", "not a unicast address"},
		{"PLUTO_PEER", "\x00delete", "PLUTO_PEER: missing"},
		{"PLUTO_MY_CLIENT", "10.40.0.1/24", "not a network prefix"},
		{"PLUTO_PEER_CLIENT", "::/0", "other family"},
		{"PLUTO_PEER_CLIENT", "0.0.0.0/0\nPLUTO_X=1", "not a network prefix"},
		{"PLUTO_MARK_OUT", "512", "not VALUE/MASK"},
		{"PLUTO_MARK_OUT", "0x1000/0xf00", "bits outside the mask"},
		{"PLUTO_IF_ID_OUT", "-1", "not a number"},
		{"PLUTO_UDP_ENC", "70000", "not a port number"},
		{"PLUTO_MY_PORT", "99999", "not a port number"},
		{"PLUTO_PROTO", "gre", "not esp or ah"},
		{"PLUTO_MY_SOURCEIP4_1", "10.40.0.x", "not an IP address"},
		{"PLUTO_DNS4_1", "8.8.8.8.8", "not an IP address"},
		{"PLUTO_PEER_ID", "CN=x\x1b[2J", "control characters"},
		{"PLUTO_HOST_ACCESS", "yes", "not 1"},
	} {
		_, _, err := StrongSwan("w", with(clientEnv(), c.k, c.v), nil, libipsec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: %v, want %q", c.k, c.v, err, c.want)
		}
	}
}

func FuzzStrongSwan(f *testing.F) {
	f.Add("PLUTO_PEER_CLIENT", "0.0.0.0/0")
	f.Add("PLUTO_MARK_OUT", "512/0x00000f00")
	f.Add("PLUTO_IF_ID_OUT", "7")
	f.Fuzz(func(t *testing.T, k, v string) {
		v2, ev, err := StrongSwan("w", with(clientEnv(), "PLUTO_"+k, v), nil, StrongSwanSetup{Device: "ipsec0",
			Devices: []StrongSwanDevice{{Name: "x7", Kind: "xfrm", IfID: 7}}})
		if err != nil {
			return
		}
		// Whatever was accepted is clean: a device name, addresses, and
		// selectors that parse.
		if !devRE.MatchString(v2.Device) || (ev != Up && ev != Down) {
			t.Fatalf("accepted %q=%q: %+v", k, v, v2)
		}
		for _, s := range v2.Selectors {
			a, b, ok := strings.Cut(s, "=")
			if _, err := netip.ParsePrefix(a); err != nil || !ok {
				t.Fatalf("selector %q", s)
			}
			if _, err := netip.ParsePrefix(b); err != nil {
				t.Fatalf("selector %q", s)
			}
		}
	})
}
