package compile

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/state"
)

// ChainWireGuardGuard holds the guard against CVE-2019-14899 for the
// full-tunnel WireGuard devices.
const ChainWireGuardGuard = "wireguard_guard"

// wireGuardRouting emits wg-quick's routing for the WireGuard devices
// with a table (`table: auto` or a table): each peer's allowed IPs are
// routed into the device; a /0 makes a full tunnel for its family:
//
//	ip route add default dev wg0 table T
//	ip rule add not fwmark M table T pref P+1
//	ip rule add table main suppress_prefixlength 0 pref P
//
// where M is the device's fwmark (the table's number when it has none,
// as wg-quick does): WireGuard's own encrypted packets carry M and so
// keep to main, everything else goes into the tunnel, while main's more
// specific routes (the LAN) still win over the tunnel's default. And the
// guard wg-quick adds against CVE-2019-14899: a packet to the tunnel's
// address that arrives by any other interface is dropped (an attacker on
// the uplink could otherwise probe which address the tunnel has and
// inject into its connections).
func (c *compiler) wireGuardRouting(tables *tableAllocator) error {
	n := 0
	for _, d := range c.cfg.Devices {
		w := d.WireGuard
		if w == nil || !w.Routing {
			continue
		}
		table := w.Table
		if table == 0 {
			table = tables.get()
		}
		prio := w.Priority
		if prio == 0 {
			prio = config.DefaultWireGuardPriority - 2*uint32(n)
		}
		n++
		mark := w.FwMark
		if mark == 0 {
			mark = table
			for i := range c.res.State.Links {
				if l := &c.res.State.Links[i]; l.Name == d.Name && l.WireGuard != nil {
					l.WireGuard.FwMark = mark
				}
			}
		}
		full := map[bool]bool{}
		for _, p := range w.Peers {
			for _, a := range p.AllowedIPs {
				if a.Bits() == 0 {
					full[a.Addr().Is6()] = true
					continue
				}
				t := state.TableMain
				if w.TableGiven {
					t = table
				}
				if err := c.addRoute(c.deviceRoute(a, d.Name, netip.Addr{}, netip.Addr{}, t), d.At("peers")); err != nil {
					return err
				}
			}
		}
		for _, v6 := range []bool{false, true} {
			if !full[v6] {
				continue
			}
			if err := c.addRoute(c.deviceRoute(anyPrefix(v6), d.Name, netip.Addr{}, netip.Addr{}, table), d.At("table")); err != nil {
				return err
			}
			suppress := state.NewRule(fam(v6))
			suppress.Priority, suppress.Table, suppress.SuppressPrefixLen, suppress.Protocol = prio, state.TableMain, 0, state.Proto
			notMark := state.NewRule(fam(v6))
			notMark.Priority, notMark.Invert, notMark.Mark, notMark.Mask = prio+1, true, mark, 0xffffffff
			notMark.Table, notMark.Protocol = table, state.Proto
			c.res.State.Rules = append(c.res.State.Rules, suppress, notMark)
			var own []netip.Prefix
			for _, a := range d.Addrs {
				if a.Addr().Is6() == v6 {
					own = append(own, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
				}
			}
			if len(own) == 0 {
				c.note("devices: %s is a full tunnel for IPv%d without an IPv%d address of its own: no guard against CVE-2019-14899 is needed for it", d.Name, fam(v6), fam(v6))
				continue
			}
			guard := c.firewall().chain(ChainWireGuardGuard, "filter", "prerouting", -300)
			guard.Rules = append(guard.Rules, state.FwRule{
				Comment: "CVE-2019-14899: to " + d.Name + "'s address from another interface", Family: fam(v6),
				NotIIF: []string{d.Name, "lo"}, Daddr: own, Counter: true, Verdict: "drop"})
		}
	}
	return nil
}

// routedWireGuard are the devices wireGuardRouting routes into: the
// kill switch counts them as tunnels, and their peers' endpoints as VPN
// servers (the encrypted packets must reach them in clear).
func (c *compiler) routedWireGuard() (devs []string, servers []facts.Endpoint) {
	for _, d := range c.cfg.Devices {
		if d.WireGuard == nil || !d.WireGuard.Routing {
			continue
		}
		devs = append(devs, d.Name)
		for _, p := range d.WireGuard.Peers {
			if p.Endpoint.IsValid() {
				servers = append(servers, facts.Endpoint{Addr: p.Endpoint.Addr(), Port: p.Endpoint.Port(), Proto: "udp"})
			}
		}
	}
	return devs, servers
}
