package config

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// BGP is one BGP speaker: the top level's (the namespace tunroute runs
// on) or a routing domain's. tunroute does not speak BGP itself: it
// generates the configuration of one engine instance (BIRD) per speaker
// from what the config declares, and runs it inside the domain.
type BGP struct {
	// Engine is the BGP daemon: "bird" (BIRD 2, the default) or "frr".
	Engine   string
	ASN      uint32
	RouterID netip.Addr
	// Originate are the networks this speaker announces. When not given
	// they are what the config routes into the domain (the prefixes the
	// other ends of its pipes send through them), default routes aside.
	Originate      []netip.Prefix
	OriginateGiven bool
	// Table is the kernel table learned routes go into (default main).
	Table uint32
	// HoldTime in seconds (3-65535; keepalives go every third of it).
	HoldTime uint32
	// BFD turns on bidirectional forwarding detection on every session:
	// a dead path is seen in a fraction of a second instead of the hold
	// time.
	BFD       bool
	Neighbors []*BGPNeighbor

	positions
}

// Max-prefix actions, BIRD's words: what happens when a neighbour sends
// more routes than MaxPrefixes.
var maxPrefixActions = []string{"disable", "restart", "block", "warn"}

// BGPNeighbor is one session. The peer is named by a pipe (the other
// end's address), by a tunnel identity (its gateway) or by an address.
type BGPNeighbor struct {
	// Name names the session (BIRD's protocol name, `status`).
	Name     string
	Pipe     string
	Identity string
	// Address is the peer's address; Local ours ("" when the engine
	// picks it from the route to the peer).
	Address netip.Addr
	Local   netip.Addr
	ASN     uint32
	// Accept are the only prefixes taken from this neighbour (exact
	// matches: a more specific of an accepted prefix is refused). The
	// default is what the neighbour may originate: its domain's
	// originate list, or the prefixes our end of the pipe or our tunnel
	// identity routes to it.
	Accept      []netip.Prefix
	AcceptGiven bool
	// AllowDefault lets a default route (0.0.0.0/0, ::/0) in Accept; it
	// is refused otherwise, even when listed.
	AllowDefault bool
	// Export are the prefixes announced to this neighbour (default: the
	// speaker's Originate).
	Export      []netip.Prefix
	ExportGiven bool
	// MaxPrefixes is the most routes (accepted or refused) the neighbour
	// may send; more and MaxPrefixAction happens (default: tear the
	// session down and keep it down until an operator restarts it).
	MaxPrefixes     uint32
	MaxPrefixAction string

	positions
}

// Defaults of a BGP speaker.
const (
	DefaultBGPHoldTime = 9
	// DefaultMaxPrefixSlack is added to the number of accepted prefixes
	// to make the default max-prefix limit: a neighbour may send a few
	// routes the filters refuse (a misconfiguration) before the session
	// is torn down; a flood trips it.
	DefaultMaxPrefixSlack = 10
)

// bgpNameRE: BIRD protocol names are symbols.
var bgpNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,31}$`)

// AllBGP lists the speakers of the config: the top level's (domain
// HostDomain) and each domain's that has a bgp section.
func (c *Config) AllBGP() []DomainBGP {
	var out []DomainBGP
	if c.BGP != nil {
		out = append(out, DomainBGP{Domain: HostDomain, BGP: c.BGP})
	}
	for _, d := range c.Domains {
		if d.Config.BGP != nil {
			out = append(out, DomainBGP{Domain: d.Name, BGP: d.Config.BGP})
		}
	}
	return out
}

// DomainBGP is a speaker with the domain it runs in.
type DomainBGP struct {
	Domain string
	BGP    *BGP
}

func (d *decoder) bgp(v node) error {
	m, err := v.mapping("engine", "asn", "router_id", "originate", "table", "hold_time", "bfd", "neighbors")
	if err != nil {
		return err
	}
	b := &BGP{positions: m.at, Engine: "bird", Table: 254, HoldTime: DefaultBGPHoldTime}
	if n, ok := m.get("engine"); ok {
		if b.Engine, err = n.scalar(); err != nil {
			return err
		}
		if b.Engine != "bird" && b.Engine != "frr" {
			return n.pos.Errorf("unknown engine %q; expected bird (BIRD 2, the default) or frr", b.Engine)
		}
	}
	if b.ASN, err = asn(m, "asn"); err != nil {
		return err
	}
	if n, ok := m.get("router_id"); ok {
		s, err := n.scalar()
		if err != nil {
			return err
		}
		if b.RouterID, err = parseAddr(n.pos, s); err != nil {
			return err
		}
		if !b.RouterID.Is4() {
			return n.pos.Errorf("%s: a router id is written as an IPv4 address", s)
		}
	}
	if b.OriginateGiven, err = optPrefixes(m, "originate", &b.Originate); err != nil {
		return err
	}
	if err := d.optTable(m, false, &b.Table); err != nil {
		return err
	}
	if err := optUint(m, "hold_time", 3, 65535, &b.HoldTime); err != nil {
		return err
	}
	if n, ok := m.get("bfd"); ok {
		if b.BFD, err = boolValue(n); err != nil {
			return err
		}
	}
	n, ok := m.get("neighbors")
	if !ok {
		return m.at("neighbors").Errorf("missing: list the sessions (pipe, identity or address of each peer)")
	}
	items, err := n.seqOnly()
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, it := range items {
		nb, err := d.bgpNeighbor(it)
		if err != nil {
			return err
		}
		if nb.Name != "" {
			if names[nb.Name] {
				return nb.At("name").Errorf("neighbor %q is named twice", nb.Name)
			}
			names[nb.Name] = true
		}
		b.Neighbors = append(b.Neighbors, nb)
	}
	if len(b.Neighbors) == 0 {
		return n.pos.Errorf("is empty: list at least one neighbor")
	}
	if b.Engine == "frr" {
		// zebra installs the routes of the default VRF in main; FRR
		// has no "block" action (it stops the session or warns).
		if b.Table != 254 {
			return m.at("table").Errorf("with engine frr, learned routes go into the main table only")
		}
		for _, nb := range b.Neighbors {
			if nb.MaxPrefixAction == "block" {
				return nb.At("max_prefix_action").Errorf("engine frr has no block action; use disable, restart or warn")
			}
		}
	}
	d.cfg.BGP = b
	return nil
}

func asn(m *mapping, key string) (uint32, error) {
	var v uint32
	err := requiredUint(m, key, 1, 4294967294, "the AS number (1-4294967294; private: 64512-65534, 4200000000-4294967294)", &v)
	return v, err
}

func (d *decoder) bgpNeighbor(v node) (*BGPNeighbor, error) {
	m, err := v.mapping("name", "pipe", "identity", "address", "local", "asn", "accept", "allow_default",
		"export", "max_prefixes", "max_prefix_action")
	if err != nil {
		return nil, err
	}
	nb := &BGPNeighbor{positions: m.at, MaxPrefixAction: "disable"}
	if n, ok := m.get("name"); ok {
		if nb.Name, err = n.scalar(); err != nil {
			return nil, err
		}
		if !bgpNameRE.MatchString(nb.Name) {
			return nil, n.pos.Errorf("%q: a neighbor name starts with a letter and holds letters, digits and '_' (at most 32)", nb.Name)
		}
	}
	var by []string
	for _, key := range []string{"pipe", "identity", "address"} {
		if _, ok := m.get(key); ok {
			by = append(by, key)
		}
	}
	switch len(by) {
	case 0:
		return nil, m.at("address").Errorf("missing: name the peer by pipe, identity or address")
	case 1:
	default:
		return nil, m.at(by[1]).Errorf("give one of pipe, identity or address, not %s", strings.Join(by, " and "))
	}
	if n, ok := m.get("pipe"); ok {
		if nb.Pipe, err = n.scalar(); err != nil {
			return nil, err
		}
	}
	if n, ok := m.get("identity"); ok {
		if nb.Identity, err = d.identityRef(n); err != nil {
			return nil, err
		}
	}
	if err := scalarsInto(m, []keyed[netip.Addr]{{"address", &nb.Address}, {"local", &nb.Local}}, addrScalar); err != nil {
		return nil, err
	}
	if _, ok := m.get("asn"); ok {
		if nb.ASN, err = asn(m, "asn"); err != nil {
			return nil, err
		}
	}
	if nb.AcceptGiven, err = optPrefixes(m, "accept", &nb.Accept); err != nil {
		return nil, err
	}
	if n, ok := m.get("allow_default"); ok {
		if nb.AllowDefault, err = boolValue(n); err != nil {
			return nil, err
		}
	}
	if nb.ExportGiven, err = optPrefixes(m, "export", &nb.Export); err != nil {
		return nil, err
	}
	if err := optUint(m, "max_prefixes", 1, 0xffffffff, &nb.MaxPrefixes); err != nil {
		return nil, err
	}
	if n, ok := m.get("max_prefix_action"); ok {
		s, err := n.scalar()
		if err != nil {
			return nil, err
		}
		if !contains(maxPrefixActions, s) {
			return nil, n.pos.Errorf("unknown action %q; expected one of: %s", s, strings.Join(maxPrefixActions, ", "))
		}
		nb.MaxPrefixAction = s
	}
	return nb, nil
}

// resolveBGP completes every speaker once the whole config (domains and
// pipes) is known: the peers named by pipe or identity get their
// addresses, the defaults of originate, accept, export, asn and router
// id are filled in, and each session is checked.
func (d *decoder) resolveBGP(top *Config) error {
	speakers := top.AllBGP()
	byDomain := map[string]*BGP{}
	for _, s := range speakers {
		byDomain[s.Domain] = s.BGP
	}
	// Originate first: a neighbour's default accept list is the other
	// speaker's originate list.
	for _, s := range speakers {
		if !s.BGP.OriginateGiven {
			s.BGP.Originate = routedInto(top, s.Domain)
		}
	}
	for _, s := range speakers {
		cfg := top
		if s.Domain != HostDomain {
			cfg = top.Domain(s.Domain).Config
		}
		if err := resolveSpeaker(top, cfg, s.Domain, s.BGP, byDomain); err != nil {
			return err
		}
	}
	return nil
}

// routedInto lists what the config routes into a domain: the prefixes
// the other ends of its pipes send through them, default routes aside.
func routedInto(top *Config, domain string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range top.Pipes {
		for _, e := range []struct{ me, other *PipeEnd }{{&p.A, &p.B}, {&p.B, &p.A}} {
			if e.me.Domain != domain {
				continue
			}
			for _, r := range e.other.Routes {
				if r.Bits() != 0 && !containsPrefix(out, r) {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

func resolveSpeaker(top, cfg *Config, domain string, b *BGP, byDomain map[string]*BGP) error {
	names := map[string]bool{}
	for i, nb := range b.Neighbors {
		var peerBGP *BGP
		switch {
		case nb.Pipe != "":
			p := top.pipe(nb.Pipe)
			if p == nil {
				return nb.At("pipe").Errorf("no pipe %q", nb.Pipe)
			}
			me, other := &p.A, &p.B
			if p.B.Domain == domain {
				me, other = &p.B, &p.A
			} else if p.A.Domain != domain {
				return nb.At("pipe").Errorf("pipe %s joins %s and %s, not this domain (%s)", p.Name, p.A.Domain, p.B.Domain, domain)
			}
			addr, local, ok := pipePeer(me, other)
			if !ok {
				return nb.At("pipe").Errorf("the ends of pipe %s have no addresses of one family to hold a session on", p.Name)
			}
			nb.Address = addr
			if !nb.Local.IsValid() {
				nb.Local = local
			}
			peerBGP = byDomain[other.Domain]
			if !nb.AcceptGiven {
				if peerBGP != nil {
					nb.Accept = peerBGP.Originate
				} else {
					nb.Accept = me.Routes
				}
			}
			if nb.Name == "" {
				nb.Name = symbol("pipe_" + p.Name)
			}
		case nb.Identity != "":
			id := cfg.Identity(nb.Identity)
			if !nb.Address.IsValid() {
				if id.Gateway != GatewayLiteral {
					return nb.At("identity").Errorf("identity %s has no literal gateway to peer with; give its address too", id.Name)
				}
				nb.Address = id.Gateways[0]
			}
			if !nb.Local.IsValid() {
				for _, a := range id.Addresses {
					if a.Is4() == nb.Address.Is4() {
						nb.Local = a
						break
					}
				}
			}
			if !nb.AcceptGiven {
				for _, r := range cfg.Routes {
					if r.Via == id.Name {
						nb.Accept = append(nb.Accept, r.To...)
					}
				}
			}
			if nb.Name == "" {
				nb.Name = symbol("id_" + id.Name)
			}
		default:
			if !nb.AcceptGiven {
				return nb.At("accept").Errorf("missing: list the prefixes this neighbor may originate (a peer given by address has nothing in the config to take them from)")
			}
			if nb.Name == "" {
				nb.Name = symbol("peer_" + nb.Address.String())
			}
		}
		if names[nb.Name] {
			nb.Name = symbol(nb.Name + "_" + strconv.Itoa(i+1))
		}
		names[nb.Name] = true
		if nb.ASN == 0 {
			if peerBGP == nil {
				return nb.At("asn").Errorf("missing: the neighbor's AS number")
			}
			nb.ASN = peerBGP.ASN
		}
		if nb.Local.IsValid() && nb.Local.Is4() != nb.Address.Is4() {
			return nb.At("local").Errorf("local %s and the neighbor's address %s are of different families", nb.Local, nb.Address)
		}
		// Defaults taken from elsewhere keep the session's family; a
		// list given here must fit it.
		if !nb.ExportGiven {
			nb.Export = familyOf(b.Originate, nb.Address.Is6())
		}
		if !nb.AcceptGiven {
			nb.Accept = familyOf(nb.Accept, nb.Address.Is6())
		}
		for _, l := range []struct {
			key string
			ps  []netip.Prefix
		}{{"accept", nb.Accept}, {"export", nb.Export}} {
			for _, p := range l.ps {
				if p.Addr().Is4() != nb.Address.Is4() {
					return nb.At(l.key).Errorf("%s: a session with %s carries IPv%d prefixes only; add a neighbor with an IPv%d address for it", p, nb.Address, fam(nb.Address.Is6()), fam(p.Addr().Is6()))
				}
			}
		}
		if !nb.AllowDefault {
			nb.Accept = withoutDefault(nb.Accept)
		}
		if nb.MaxPrefixes == 0 {
			nb.MaxPrefixes = uint32(len(nb.Accept)) + DefaultMaxPrefixSlack
		}
	}
	if !b.RouterID.IsValid() {
		for _, nb := range b.Neighbors {
			if nb.Local.Is4() {
				b.RouterID = nb.Local
				break
			}
		}
		if !b.RouterID.IsValid() {
			return b.At("router_id").Errorf("missing: no session has a local IPv4 address to take it from; give one (an IPv4 address of this domain)")
		}
	}
	return nil
}

// pipePeer picks the session's addresses on a pipe: IPv4 when both ends
// have one, else IPv6.
func pipePeer(me, other *PipeEnd) (peer, local netip.Addr, ok bool) {
	for _, v6 := range []bool{false, true} {
		var a, b netip.Addr
		for _, p := range other.Addrs {
			if p.Addr().Is6() == v6 && !a.IsValid() {
				a = p.Addr()
			}
		}
		for _, p := range me.Addrs {
			if p.Addr().Is6() == v6 && !b.IsValid() {
				b = p.Addr()
			}
		}
		if a.IsValid() && b.IsValid() {
			return a, b, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

func withoutDefault(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Bits() != 0 {
			out = append(out, p)
		}
	}
	return out
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// symbol makes a BIRD symbol of s: letters, digits and '_'.
func symbol(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}

func (c *Config) pipe(name string) *Pipe {
	return byName(c.Pipes, name)
}

// familyOf keeps the prefixes of one family.
var familyOf = state.PrefixesOfFamily
