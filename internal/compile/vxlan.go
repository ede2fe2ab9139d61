package compile

import (
	"github.com/tunroute/tunroute/internal/state"
)

// vxlans emits the config's vxlan devices with their addresses. In a
// domain, the device is created from the top namespace, where its
// underlay (the tunnel between the sites) is, and placed in the domain.
func (c *compiler) vxlans() {
	for _, x := range c.cfg.VXLANs {
		l := state.Link{Name: x.Name, Kind: "vxlan", Up: true, Alias: state.LinkAliasPrefix + "vxlan",
			VXLAN: &state.VXLAN{VNI: x.VNI, Local: x.Local, Remote: x.Remote, Dev: x.Dev, Port: x.Port,
				UnderlayNamespace: c.underlayNS}}
		c.res.State.Links = append(c.res.State.Links, l)
		if _, ok := c.f.links[x.Name]; !ok {
			// Identities and routes may use the device before it exists.
			c.f.links[x.Name] = &state.Link{Name: x.Name, Kind: "vxlan", Up: true, Carrier: true}
		}
		for _, a := range x.Addrs {
			ad := state.Addr{Dev: x.Name, Prefix: a, Scope: state.ScopeUniverse, Proto: state.Proto}
			if a.Addr().Is6() {
				ad.Flags = state.AddrNoDAD
			}
			c.res.State.Addrs = append(c.res.State.Addrs, ad)
		}
	}
}
