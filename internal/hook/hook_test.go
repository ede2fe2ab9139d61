package hook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// labOpenVPN is the environment OpenVPN 2.6 gave a route-up script in the
// lab (lab-notes.md item 2), topology subnet, with IPv6.
func labOpenVPN() Env {
	return Env{
		"dev": "ovpn0", "dev_type": "tun", "tun_mtu": "1500", "script_type": "route-up", "script_context": "init",
		"ifconfig_local": "10.8.0.2", "ifconfig_netmask": "255.255.255.0",
		"ifconfig_ipv6_local": "2001:db8:8::1000", "ifconfig_ipv6_netbits": "64", "ifconfig_ipv6_remote": "2001:db8:8::1",
		"route_vpn_gateway": "10.8.0.1", "route_net_gateway": "10.1.0.1",
		"route_network_1": "10.99.0.0", "route_netmask_1": "255.255.0.0", "route_gateway_1": "10.8.0.1",
		"route_ipv6_network_1": "2001:db8:99::/48",
		"trusted_ip":           "198.51.100.2", "trusted_port": "1194", "untrusted_ip": "198.51.100.2", "untrusted_port": "1194",
		"remote_1": "198.51.100.2", "remote_port_1": "1194", "proto_1": "udp",
		"foreign_option_1": "dhcp-option DNS 10.8.0.1", "foreign_option_2": "dhcp-option DOMAIN example.test",
		"foreign_option_3": "dhcp-option DNS6 2001:db8:8::53",
		"common_name":      "server", "config": "client.conf", "daemon": "1", "verb": "3",
	}
}

func TestOpenVPNSubnet(t *testing.T) {
	v, err := OpenVPN("work", labOpenVPN())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(v)
	want := `{"name":"work","type":"openvpn","device":"ovpn0","addrs":["10.8.0.2/24","2001:db8:8::1000/64"],"gateway4":"10.8.0.1","gateway6":"2001:db8:8::1","servers":[{"addr":"198.51.100.2","port":1194,"proto":"udp"}],"orig_gateway4":"10.1.0.1","dns":["10.8.0.1","2001:db8:8::53"],"routes":["10.99.0.0/16","2001:db8:99::/48"],"updated":"0001-01-01T00:00:00Z"}`
	if string(got) != want {
		t.Errorf("facts:\n%s\nwant\n%s", got, want)
	}
	if err := v.Validate(); err != nil {
		t.Error(err)
	}
}

func TestOpenVPNNet30(t *testing.T) {
	env := labOpenVPN()
	delete(env, "ifconfig_netmask")
	env["ifconfig_local"], env["ifconfig_remote"], env["route_vpn_gateway"] = "10.8.0.6", "10.8.0.5", "10.8.0.5"
	env["proto_1"] = "tcp-client"
	v, err := OpenVPN("work", env)
	if err != nil {
		t.Fatal(err)
	}
	if v.Addrs[0].String() != "10.8.0.6/32" || v.Gateway4.String() != "10.8.0.5" || v.Servers[0].Proto != "tcp" {
		t.Errorf("net30: %+v", v)
	}
}

func TestOpenVPNEvents(t *testing.T) {
	for verb, want := range map[string]Event{"up": Up, "route-up": Up, "route-pre-down": Down, "down": Down, "ipchange": Ignore} {
		if got, err := OpenVPNEvent(verb); err != nil || got != want {
			t.Errorf("%s: %v %v", verb, got, err)
		}
	}
	if _, err := OpenVPNEvent("reboot"); err == nil || !strings.Contains(err.Error(), `script_type="reboot"`) {
		t.Errorf("unknown script type: %v", err)
	}
}

// TestHostileOpenVPN: values an attacker could put in the environment
// (a pushed option, a crafted config) are refused with the variable named.
func TestHostileOpenVPN(t *testing.T) {
	cases := []struct{ key, value, want string }{
		{"dev", "tun0; rm -rf /", `environment variable dev="tun0; rm -rf /": not an interface name (1-15 of A-Z a-z 0-9 _ . -)`},
		{"dev", "$(reboot)", `environment variable dev="$(reboot)": not an interface name`},
		{"dev", "averyveryverylongname", `environment variable dev="averyveryverylongname": not an interface name`},
		{"dev", "..", `environment variable dev="..": not an interface name`},
		{"dev", "", "environment variable dev: missing"},
		{"ifconfig_local", "10.8.0.2 dev eth0", `environment variable ifconfig_local="10.8.0.2 dev eth0": not an IP address`},
		{"ifconfig_local", "2001:db8::1", `environment variable ifconfig_local="2001:db8::1": not an IPv4 address`},
		{"ifconfig_netmask", "255.0.255.0", `environment variable ifconfig_netmask="255.0.255.0": not a contiguous netmask`},
		{"ifconfig_ipv6_netbits", "129", `environment variable ifconfig_ipv6_netbits="129": not a prefix length 0-128`},
		{"route_vpn_gateway", "0.0.0.0", `environment variable route_vpn_gateway="0.0.0.0": not a unicast address`},
		{"trusted_ip", "fe80::1%eth0", `environment variable trusted_ip="fe80::1%eth0": not an IP address`},
		{"trusted_port", "99999", `environment variable trusted_port="99999": not a port number (1-65535)`},
		{"proto_1", "icmp", `environment variable proto_1="icmp": not an OpenVPN transport (udp, tcp-client...)`},
		{"proto_1", "udp; reboot", `environment variable proto_1="udp; reboot": not an OpenVPN transport`},
		{"proto_1", "tcp$(id)", `environment variable proto_1="tcp$(id)": not an OpenVPN transport`},
		{"foreign_option_1", "dhcp-option DNS 10.8.0.1 ; rm -rf /", `environment variable foreign_option_1="dhcp-option DNS 10.8.0.1 ; rm -rf /": not a DNS server address`},
		{"foreign_option_1", "dhcp-option DNS", `environment variable foreign_option_1="dhcp-option DNS": not a DNS server address`},
		{"foreign_option_1", "dhcp-option DNS 10.8.0.1;evil", `environment variable foreign_option_1="dhcp-option DNS 10.8.0.1;evil": not a DNS server address`},
		{"route_network_1", "10.99.0.1", `environment variable route_network_1="10.99.0.1": has host bits set for netmask /16`},
		{"route_ipv6_network_1", "::/0 via x", `environment variable route_ipv6_network_1="::/0 via x": not an IPv6 prefix`},
	}
	for _, tc := range cases {
		env := labOpenVPN()
		env[tc.key] = tc.value
		_, err := OpenVPN("work", env)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s=%q: got %v\nwant %s", tc.key, tc.value, err, tc.want)
		}
	}
}

func TestTinc(t *testing.T) {
	base := Env{"NETNAME": "vpn", "NAME": "client", "DEVICE": "/dev/net/tun", "INTERFACE": "tinc0"}
	v, err := Tinc("home", "tinc-up", base, nil)
	if err != nil || v.Device != "tinc0" || len(v.Servers) != 0 {
		t.Fatalf("tinc-up: %+v %v", v, err)
	}
	up := Env{"INTERFACE": "tinc0", "NODE": "vpnserver", "REMOTEADDRESS": "198.51.100.2", "REMOTEPORT": "655"}
	v, err = Tinc("home", "host-up", up, v)
	if err != nil || len(v.Servers) != 1 || v.Servers[0].Addr.String() != "198.51.100.2" || v.Servers[0].Port != 655 || v.Servers[0].Proto != "" {
		t.Fatalf("host-up: %+v %v", v, err)
	}
	again, _ := Tinc("home", "host-up", up, v)
	if len(again.Servers) != 1 {
		t.Errorf("host-up twice must not duplicate the server: %+v", again.Servers)
	}
	sub := Env{"INTERFACE": "tinc0", "NODE": "vpnserver", "SUBNET": "10.20.0.0/24#10"}
	v, err = Tinc("home", "subnet-up", sub, v)
	if err != nil || len(v.Routes) != 1 || v.Routes[0].String() != "10.20.0.0/24" {
		t.Fatalf("subnet-up: %+v %v", v, err)
	}
	v, err = Tinc("home", "host-down", up, v)
	if err != nil || len(v.Servers) != 0 {
		t.Fatalf("host-down: %+v %v", v, err)
	}
	for _, bad := range []Env{
		{"INTERFACE": "tinc0;id"},
		{"INTERFACE": "tinc0", "NODE": "a b", "REMOTEADDRESS": "198.51.100.2"},
		{"INTERFACE": "tinc0", "NODE": "server", "REMOTEADDRESS": "example.com"},
		{"INTERFACE": "tinc0", "NODE": "server", "REMOTEADDRESS": "198.51.100.2", "REMOTEPORT": "x"},
	} {
		if _, err := Tinc("home", "host-up", bad, nil); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
	for _, s := range []string{"10.20.0.0/24#$(id)", "10.20.0.0/24#", "10.20.0.0/24#-1", "10.20.0.0/24#+1", "10.20.0.0/33"} {
		if _, err := Tinc("home", "subnet-up", Env{"INTERFACE": "tinc0", "NODE": "vpnserver", "SUBNET": s}, nil); err == nil ||
			!strings.HasPrefix(err.Error(), "environment variable SUBNET=") {
			t.Errorf("SUBNET=%q: %v", s, err)
		}
	}
	if _, err := TincEvent("rm -rf"); err == nil {
		t.Error("unknown tinc verb accepted")
	}
}

func FuzzOpenVPN(f *testing.F) {
	f.Add("ovpn0", "10.8.0.2", "255.255.255.0", "198.51.100.2", "1194", "dhcp-option DNS 10.8.0.1", "10.99.0.0", "255.255.0.0")
	f.Add("tun0", "", "", "2001:db8::1", "", "", "", "")
	f.Fuzz(func(t *testing.T, dev, local, mask, trusted, port, opt, rnet, rmask string) {
		env := Env{"dev": dev, "ifconfig_local": local, "ifconfig_netmask": mask, "trusted_ip": trusted,
			"trusted_port": port, "foreign_option_1": opt, "route_network_1": rnet, "route_netmask_1": rmask}
		v, err := OpenVPN("fuzz", env)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "environment variable ") {
				t.Fatalf("error does not name the variable: %v", err)
			}
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("accepted facts that do not validate: %v (%+v)", err, v)
		}
	})
}

func FuzzTinc(f *testing.F) {
	f.Add("host-up", "tinc0", "server", "198.51.100.2", "655", "10.20.0.0/24")
	f.Fuzz(func(t *testing.T, verb, iface, node, addr, port, subnet string) {
		env := Env{"INTERFACE": iface, "NODE": node, "REMOTEADDRESS": addr, "REMOTEPORT": port, "SUBNET": subnet}
		if _, err := TincEvent(verb); err != nil {
			return
		}
		v, err := Tinc("fuzz", verb, env, nil)
		if err != nil {
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("accepted facts that do not validate: %v", err)
		}
	})
}

// TestTincOwnSubnets: tinc 1.0 runs subnet-up for the node's own Subnets
// too (NODE is this node); they are not routes pushed to it. The local
// name comes from NAME, else from NETNAME's tinc.conf.
func TestTincOwnSubnets(t *testing.T) {
	dir := t.TempDir()
	old := TincConfRoot
	TincConfRoot = dir
	t.Cleanup(func() { TincConfRoot = old })
	if err := os.MkdirAll(filepath.Join(dir, "mesh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mesh", "tinc.conf"), []byte("# this node\nName = laptop\nConnectTo = vpnserver\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  Env
		want int // routes taken
	}{
		{"own, NAME", Env{"INTERFACE": "tinc0", "NAME": "client", "NODE": "client", "SUBNET": "10.1.0.0/24"}, 0},
		{"peer's, NAME", Env{"INTERFACE": "tinc0", "NAME": "client", "NODE": "vpnserver", "SUBNET": "10.1.0.0/24"}, 1},
		{"own, tinc.conf", Env{"INTERFACE": "tinc0", "NETNAME": "mesh", "NODE": "laptop", "SUBNET": "10.1.0.0/24"}, 0},
		{"peer's, tinc.conf", Env{"INTERFACE": "tinc0", "NETNAME": "mesh", "NODE": "vpnserver", "SUBNET": "10.1.0.0/24"}, 1},
		{"no local name known", Env{"INTERFACE": "tinc0", "NETNAME": "other", "NODE": "laptop", "SUBNET": "10.1.0.0/24"}, 1},
		{"hostile NETNAME", Env{"INTERFACE": "tinc0", "NETNAME": "../mesh", "NODE": "laptop", "SUBNET": "10.1.0.0/24"}, 1},
	} {
		v, err := Tinc("home", "subnet-up", c.env, nil)
		if err != nil || len(v.Routes) != c.want {
			t.Errorf("%s: routes %v, err %v; want %d routes", c.name, v.Routes, err, c.want)
		}
	}
}
