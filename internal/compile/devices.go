package compile

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// devices emits the config's tunnel devices (xfrm, vti, vti6, gre,
// ip6gre, wireguard) with their addresses. They are created in the
// namespace being compiled, where their underlying device is.
func (c *compiler) devices() {
	for _, d := range c.cfg.Devices {
		l := DeviceLink(d)
		c.res.State.Links = append(c.res.State.Links, l)
		if _, ok := c.f.links[d.Name]; !ok {
			if l.Userspace {
				c.note("devices: %s does not exist%s; start its userspace WireGuard (wireguard-go %s) first: tunroute configures it but does not create it", d.Name, c.where(), d.Name)
			}
			// Identities and routes may use the device before it exists.
			c.f.links[d.Name] = &state.Link{Name: d.Name, Kind: l.Kind, Up: true, Carrier: true}
		}
		if c.f.declared == nil {
			c.f.declared = map[string][]netip.Prefix{}
		}
		c.f.declared[d.Name] = d.Addrs
		for _, a := range d.Addrs {
			ad := state.Addr{Dev: d.Name, Prefix: a, Scope: state.ScopeUniverse, Proto: state.Proto}
			if a.Addr().Is6() {
				ad.Flags = state.AddrNoDAD
			}
			c.res.State.Addrs = append(c.res.State.Addrs, ad)
		}
	}
}

// DeviceLink is the link a declared device compiles to. A userspace
// WireGuard device is its daemon's: it carries no ownership mark.
func DeviceLink(d *config.Device) state.Link {
	l := state.Link{Name: d.Name, Kind: d.Type, Up: true, Alias: state.LinkAliasPrefix + d.Type}
	if w := d.WireGuard; w != nil {
		sw := &state.WireGuard{PublicKey: w.PublicKey, PrivateKeyFile: w.PrivateKeyFile,
			ListenPort: w.ListenPort, FwMark: w.FwMark}
		for _, p := range w.Peers {
			sw.Peers = append(sw.Peers, state.WGPeer{PublicKey: p.PublicKey, Endpoint: p.Endpoint,
				AllowedIPs: p.AllowedIPs, Keepalive: p.Keepalive, PresharedKeyFile: p.PresharedKeyFile, PresharedKeyID: p.PresharedKeyID})
		}
		l.WireGuard = sw
		if w.Userspace {
			l.Userspace, l.Alias = true, ""
		}
		return l
	}
	l.Tunnel = &state.Tunnel{Local: d.Local, Remote: d.Remote, IKey: d.IKey, OKey: d.OKey, TTL: d.TTL,
		IfID: d.IfID, Dev: d.Dev, DisablePolicy: d.DisablePolicy}
	return l
}
