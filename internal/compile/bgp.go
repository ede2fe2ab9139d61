package compile

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// BGP's ports: the session (TCP 179) and single-hop BFD control packets
// (UDP 3784, RFC 5881).
const (
	bgpPort = 179
	bfdPort = 3784
)

// BGPSessionRules are the kill switch's exceptions for a speaker: exactly
// its declared sessions, TCP 179 to each peer's address (from our
// address when the session has one) whichever side opened it, and BFD
// to the same peers when the speaker uses it. Nothing else of BGP's
// passes: a session to an undeclared address is dropped like any other
// packet in clear.
func BGPSessionRules(b *config.BGP) []state.FwRule {
	if b == nil {
		return nil
	}
	var out []state.FwRule
	for _, nb := range b.Neighbors {
		peer := []netip.Prefix{netip.PrefixFrom(nb.Address, nb.Address.BitLen())}
		var local []netip.Prefix
		if nb.Local.IsValid() {
			local = []netip.Prefix{netip.PrefixFrom(nb.Local, nb.Local.BitLen())}
		}
		comment := "BGP session " + nb.Name
		port := []state.PortRange{{Start: bgpPort, End: bgpPort}}
		out = append(out,
			state.FwRule{Comment: comment, Family: family(nb.Address), Daddr: peer, Saddr: local, Proto: 6, DPorts: port, Verdict: "accept"},
			state.FwRule{Comment: comment, Family: family(nb.Address), Daddr: peer, Saddr: local, Proto: 6, SPorts: port, Verdict: "accept"})
		if b.BFD {
			out = append(out, state.FwRule{Comment: "BFD of BGP session " + nb.Name, Family: family(nb.Address), Daddr: peer, Saddr: local,
				Proto: 17, DPorts: []state.PortRange{{Start: bfdPort, End: bfdPort}}, Verdict: "accept"})
		}
	}
	return out
}
