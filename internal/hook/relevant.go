package hook

import "strings"

// A hook that hands its call to `tunroute run` sends the variables its
// daemon's calls carry that tunroute reads, not its whole environment
// (which holds whatever the VPN daemon was started with). Facts of the
// relevant variables are the facts of the whole environment: a kind
// that does not say what it reads sends everything.

// envReader is a kind that says which variables it reads.
type envReader interface {
	reads(key string) bool
}

// Relevant is the part of env a call of kind k reads: its daemon's
// variables and TUNROUTE_VPN.
func Relevant(k Kind, env Env) Env {
	r, ok := k.(envReader)
	out := Env{}
	for key, v := range env {
		if !ok || key == "TUNROUTE_VPN" || r.reads(key) {
			out[key] = v
		}
	}
	return out
}

// openvpnVars are the variables of OpenVPN's script environment that
// OpenVPN() and the verb read; openvpnNumbered, the numbered ones.
var (
	openvpnVars = map[string]bool{
		"script_type": true, "dev": true,
		"ifconfig_local": true, "ifconfig_netmask": true, "ifconfig_remote": true, "route_vpn_gateway": true,
		"ifconfig_ipv6_local": true, "ifconfig_ipv6_netbits": true, "ifconfig_ipv6_remote": true,
		"route_net_gateway": true, "trusted_port": true, "trusted_ip": true, "trusted_ip6": true, "proto_1": true,
	}
	openvpnNumbered = []string{"foreign_option_", "route_network_", "route_netmask_", "route_ipv6_network_"}
)

func (openvpnKind) reads(key string) bool {
	if openvpnVars[key] {
		return true
	}
	for _, p := range openvpnNumbered {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// tincVars: what tincd gives its scripts that Tinc() reads (NAME and
// NETNAME find this node's name).
var tincVars = map[string]bool{"INTERFACE": true, "NODE": true, "REMOTEADDRESS": true, "REMOTEPORT": true, "SUBNET": true, "NAME": true, "NETNAME": true}

func (tincKind) reads(key string) bool { return tincVars[key] }

// strongSwan: every PLUTO_* variable is checked, also those tunroute
// does not use.
func (strongswanKind) reads(key string) bool { return strings.HasPrefix(key, "PLUTO_") }
