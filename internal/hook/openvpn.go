package hook

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/facts"
)

// OpenVPNEvent maps OpenVPN's script_type (or the verb given on the
// command line) to what tunroute does.
func OpenVPNEvent(scriptType string) (Event, error) {
	switch scriptType {
	case "up", "route-up":
		return Up, nil
	case "route-pre-down", "down":
		return Down, nil
	case "ipchange", "tls-verify", "client-connect", "client-disconnect", "learn-address", "auth-user-pass-verify":
		return Ignore, nil
	}
	return 0, &EnvError{Var: "script_type", Value: scriptType, Msg: "not an OpenVPN script type (up, route-up, route-pre-down, down)"}
}

// tunnelAddr reads an optional tunnel address under addrKey with its
// prefix length under lenKey, which bits parses (a host prefix when
// lenKey is not given).
func (e Env) tunnelAddr(addrKey, lenKey string, want6 bool, bits func(key, v string) (int, error)) (netip.Prefix, bool, error) {
	a, ok, err := e.addr(addrKey, want6)
	if !ok || err != nil {
		return netip.Prefix{}, false, err
	}
	n := a.BitLen()
	if s := e[lenKey]; s != "" {
		if n, err = bits(lenKey, s); err != nil {
			return netip.Prefix{}, false, err
		}
	}
	return netip.PrefixFrom(a, n), true, nil
}

// prefixLen6 reads an IPv6 prefix length (OpenVPN's netbits).
func prefixLen6(key, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 128 {
		return 0, &EnvError{Var: key, Value: v, Msg: "not a prefix length 0-128"}
	}
	return n, nil
}

// OpenVPN reads the facts of a connection from OpenVPN's script
// environment (see openvpn(8), "Environmental Variables"; the values a
// client sees are listed in lab-notes.md item 2). Works with route-noexec:
// the routes OpenVPN would have set are in the environment, and tunroute
// sets its own.
func OpenVPN(name string, env Env) (*facts.VPN, error) {
	v := &facts.VPN{Name: name, Type: "openvpn"}
	var err error
	if v.Device, err = env.device("dev"); err != nil {
		return nil, err
	}
	// IPv4 tunnel address: topology subnet gives a netmask, net30/p2p a
	// remote end.
	if local, ok, err := env.tunnelAddr("ifconfig_local", "ifconfig_netmask", false, netmaskBits); err != nil {
		return nil, err
	} else if ok {
		v.Addrs = append(v.Addrs, local)
		if err := env.setAddr("ifconfig_remote", false, &v.Gateway4); err != nil {
			return nil, err
		}
	}
	if err := env.setAddr("route_vpn_gateway", false, &v.Gateway4); err != nil {
		return nil, err
	}
	if local6, ok, err := env.tunnelAddr("ifconfig_ipv6_local", "ifconfig_ipv6_netbits", true, prefixLen6); err != nil {
		return nil, err
	} else if ok {
		v.Addrs = append(v.Addrs, local6)
	}
	if err := env.setAddr("ifconfig_ipv6_remote", true, &v.Gateway6); err != nil {
		return nil, err
	}
	if err := env.setAddr("route_net_gateway", false, &v.OrigGateway4); err != nil {
		return nil, err
	}
	if err := openvpnServer(env, v); err != nil {
		return nil, err
	}
	if err := openvpnOptions(env, v); err != nil {
		return nil, err
	}
	if err := openvpnRoutes(env, v); err != nil {
		return nil, err
	}
	return v, nil
}

// openvpnServer: the server's real address (trusted_ip, or trusted_ip6),
// its port and the transport.
func openvpnServer(env Env, v *facts.VPN) error {
	port, err := env.port("trusted_port")
	if err != nil {
		return err
	}
	proto := ""
	if p := env["proto_1"]; p != "" {
		var ok bool
		if proto, ok = openvpnProtos[p]; !ok {
			return &EnvError{Var: "proto_1", Value: p, Msg: "not an OpenVPN transport (udp, tcp-client...)"}
		}
	}
	for _, key := range []string{"trusted_ip", "trusted_ip6"} {
		a, ok, err := env.addr(key, key == "trusted_ip6")
		if err != nil {
			return err
		}
		if ok {
			v.Servers = append(v.Servers, facts.Endpoint{Addr: a, Port: port, Proto: proto})
		}
	}
	return nil
}

// openvpnProtos are the values of proto_N (OpenVPN's --proto), by the
// transport they use.
var openvpnProtos = map[string]string{
	"udp": "udp", "udp4": "udp", "udp6": "udp",
	"tcp": "tcp", "tcp4": "tcp", "tcp6": "tcp",
	"tcp-client": "tcp", "tcp4-client": "tcp", "tcp6-client": "tcp",
	"tcp-server": "tcp", "tcp4-server": "tcp", "tcp6-server": "tcp",
}

// openvpnOptions reads pushed DNS servers from foreign_option_N
// ("dhcp-option DNS 10.8.0.1", "dhcp-option DNS6 2001:db8::53").
func openvpnOptions(env Env, v *facts.VPN) error {
	for _, key := range numbered(env, "foreign_option_") {
		val := env[key]
		f := strings.Fields(val)
		if len(f) < 2 || f[0] != "dhcp-option" || (f[1] != "DNS" && f[1] != "DNS6") {
			continue // other options (DOMAIN, ...) do not concern routing
		}
		if len(f) != 3 {
			return &EnvError{Var: key, Value: val, Msg: "not a DNS server address (one per option)"}
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil || a.Zone() != "" || (f[1] == "DNS") != a.Unmap().Is4() {
			return &EnvError{Var: key, Value: val, Msg: "not a DNS server address"}
		}
		v.DNS = append(v.DNS, a.Unmap())
	}
	return nil
}

// openvpnRoutes reads pushed routes: route_network_N/route_netmask_N and
// route_ipv6_network_N ("2001:db8::/48").
func openvpnRoutes(env Env, v *facts.VPN) error {
	for _, key := range numbered(env, "route_network_") {
		n := strings.TrimPrefix(key, "route_network_")
		a, _, err := env.addr(key, false)
		if err != nil {
			return err
		}
		bits := 32
		if m, ok := env["route_netmask_"+n]; ok {
			if bits, err = netmaskBits("route_netmask_"+n, m); err != nil {
				return err
			}
		}
		p := netip.PrefixFrom(a, bits)
		if p.Masked() != p {
			return &EnvError{Var: key, Value: env[key], Msg: fmt.Sprintf("has host bits set for netmask /%d", bits)}
		}
		v.Routes = append(v.Routes, p)
	}
	for _, key := range numbered(env, "route_ipv6_network_") {
		p, err := netip.ParsePrefix(env[key])
		if err != nil || !p.Addr().Is6() || p.Masked() != p {
			return &EnvError{Var: key, Value: env[key], Msg: "not an IPv6 prefix"}
		}
		v.Routes = append(v.Routes, p)
	}
	return nil
}

// numbered returns the keys PREFIX1, PREFIX2, ... present, in order.
func numbered(env Env, prefix string) []string {
	type kn struct {
		k string
		n int
	}
	var out []kn
	for k := range env {
		if s, ok := strings.CutPrefix(k, prefix); ok {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				out = append(out, kn{k, n})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	keys := make([]string, len(out))
	for i, x := range out {
		keys[i] = x.k
	}
	return keys
}
