package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// HostDomain names the top level of the config (the namespace tunroute
// runs on: the host's, or --netns) in pipes.
const HostDomain = "host"

// Domain is a routing domain: a network namespace tunroute
// creates and owns, with its own routing in the same language as the top
// level of the config.
type Domain struct {
	// Name is the domain's and its network namespace's name.
	Name string
	// ResolvConf are the nameservers written to /etc/netns/NAME/resolv.conf,
	// which `tunroute exec` (and `ip netns exec`) show processes inside.
	ResolvConf []netip.Addr
	// Interfaces are moved into the domain when they exist (physical or
	// tunnel devices), and back to the host by down.
	Interfaces []string
	// Forwarding turns on IPv4 and IPv6 forwarding in the domain (a
	// domain that routes between its pipes and devices needs it).
	Forwarding bool
	// Config is the domain's routing: identities, routes, kill switch...
	Config *Config

	positions
}

// Pipe is a veth pair between two domains, with addresses and routes on
// both ends and a firewall that lets only the declared flows across.
type Pipe struct {
	Name string
	A, B PipeEnd
	// Allow are the flows permitted across; traffic not declared (but
	// replies to declared flows) is dropped where it leaves the pipe.
	Allow []Flow

	positions
}

// PipeEnd is one side of a pipe.
type PipeEnd struct {
	Domain string
	Device string
	Addrs  []netip.Prefix
	// Routes are the prefixes this end's domain sends into the pipe,
	// via the other end's address of the same family.
	Routes []netip.Prefix
	// Masquerade rewrites the source of traffic that came through the
	// pipe and leaves this end's domain by another interface.
	Masquerade bool
	// Netmap is 1:1 NAT at this end: the other side reaches this domain's
	// Inside range as Outside (same size), and this domain's Inside
	// addresses leave through the pipe as Outside ones. Two domains with
	// the same range get two Outside ranges.
	Netmap *Netmap

	positions
}

// Netmap maps one range onto another of the same size, host bits kept.
type Netmap struct {
	Outside, Inside netip.Prefix
}

// Flow is traffic allowed across a pipe, declared by its real origin:
// a domain's own traffic (what its namespace originates, never what it
// forwards), or traffic from source prefixes wherever it comes from.
type Flow struct {
	// From is the domain whose own traffic this is (HostDomain: the top
	// namespace's); "" when the origin is Sources. A domain that is not
	// an end of the pipe reaches it through an end it has a pipe to,
	// which forwards its traffic.
	From string
	// Sources are the source prefixes of the traffic, when the origin is
	// not a domain (a device's LAN, the Internet...).
	Sources []netip.Prefix
	To      []netip.Prefix
	Proto   uint8
	Ports   []state.PortRange

	positions
}

// Origin names the flow's origin for messages and firewall comments.
func (f *Flow) Origin() string {
	if f.From != "" {
		return f.From
	}
	var ss []string
	for _, p := range f.Sources {
		ss = append(ss, p.String())
	}
	return strings.Join(ss, ", ")
}

// End returns the pipe's end in domain dm, or nil.
func (p *Pipe) End(dm string) *PipeEnd {
	switch dm {
	case p.A.Domain:
		return &p.A
	case p.B.Domain:
		return &p.B
	}
	return nil
}

// PipeDevices lists the devices, in domain dm, of the pipes between dm and
// domain other.
func (c *Config) PipeDevices(dm, other string) []string {
	var out []string
	for _, p := range c.Pipes {
		if p.A.Domain == dm && p.B.Domain == other {
			out = append(out, p.A.Device)
		}
		if p.B.Domain == dm && p.A.Domain == other {
			out = append(out, p.B.Device)
		}
	}
	return out
}

// AnyVPN finds a VPN by name at the top level or in any domain.
func (c *Config) AnyVPN(name string) *VPN {
	if v := c.VPN(name); v != nil {
		return v
	}
	for _, d := range c.Domains {
		if v := d.Config.VPN(name); v != nil {
			return v
		}
	}
	return nil
}

// AllVPNs lists the VPNs of the top level and of every domain.
func (c *Config) AllVPNs() []*VPN {
	out := append([]*VPN(nil), c.VPNs...)
	for _, d := range c.Domains {
		out = append(out, d.Config.VPNs...)
	}
	return out
}

// Domain returns the domain with the given name, or nil.
func (c *Config) Domain(name string) *Domain {
	return byName(c.Domains, name)
}

// netnsNameRE: what tunroute accepts as a namespace name.
var netnsNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,62}$`)

func (d *decoder) domains(v node, top *Config) error {
	items, err := v.seqOnly()
	if err != nil {
		return err
	}
	for _, it := range items {
		m, err := it.mapping(append([]string{"name", "resolv_conf", "interfaces", "forwarding"}, bodyKeys...)...)
		if err != nil {
			return err
		}
		dm := &Domain{positions: m.at}
		if dm.Name, err = requiredString(m, "name"); err != nil {
			return err
		}
		if !netnsNameRE.MatchString(dm.Name) || dm.Name == HostDomain {
			return m.at("name").Errorf("%q: a domain name starts with a letter, holds letters, digits, '_', '.', '-' (at most 63) and is not %q", dm.Name, HostDomain)
		}
		if top.Domain(dm.Name) != nil {
			return m.at("name").Errorf("domain %q is defined twice", dm.Name)
		}
		if n, ok := m.get("forwarding"); ok {
			if dm.Forwarding, err = boolValue(n); err != nil {
				return err
			}
		}
		if n, ok := m.get("resolv_conf"); ok {
			dm.ResolvConf, err = scalarItems(n, func(it node, s string) (netip.Addr, error) { return parseAddr(it.pos, s) })
			if err != nil {
				return err
			}
		}
		if n, ok := m.get("interfaces"); ok {
			err := eachScalar(n, func(it node, s string) error {
				if err := checkDevice(it.pos, s); err != nil {
					return err
				}
				if s == "lo" {
					return it.pos.Errorf("lo cannot be moved: every namespace has its own loopback device")
				}
				if contains(dm.Interfaces, s) {
					return it.pos.Errorf("%s is listed twice", s)
				}
				for _, other := range top.Domains {
					if contains(other.Interfaces, s) {
						return it.pos.Errorf("%s is already moved into domain %s", s, other.Name)
					}
				}
				dm.Interfaces = append(dm.Interfaces, s)
				return nil
			})
			if err != nil {
				return err
			}
		}
		// A domain inherits the top level's settings and table names.
		dm.Config = &Config{File: top.File, TableBase: top.TableBase, PriorityBase: top.PriorityBase,
			SelectPriorityBase: top.SelectPriorityBase, MarkMask: top.MarkMask, Tables: map[string]uint32{}}
		for k, v := range top.Tables {
			dm.Config.Tables[k] = v
		}
		if err := d.body(m, dm.Config); err != nil {
			return err
		}
		for _, v := range dm.Config.VPNs {
			if top.AnyVPN(v.Name) != nil {
				return v.At("name").Errorf("vpn %q is defined twice; VPN names are unique across domains (their hooks find them by name)", v.Name)
			}
		}
		top.Domains = append(top.Domains, dm)
	}
	return nil
}

func (d *decoder) pipes(v node, top *Config) error {
	items, err := v.seqOnly()
	if err != nil {
		return err
	}
	names := map[string]bool{}
	// devices: the pipe ends' devices by namespace, with where they are
	// named (two veths of one name cannot live in one namespace).
	devices := map[[2]string]Pos{}
	var flowNodes []node
	for _, it := range items {
		m, err := it.mapping("name", "a", "b", "allow")
		if err != nil {
			return err
		}
		p := &Pipe{positions: m.at}
		if p.Name, err = requiredString(m, "name"); err != nil {
			return err
		}
		if !nameRE.MatchString(p.Name) || len(p.Name) > 15 {
			return m.at("name").Errorf("%q: a pipe name starts with a letter, holds letters, digits, '_', '.', '-', and is at most 15 long (it names the veth devices by default)", p.Name)
		}
		if names[p.Name] {
			return m.at("name").Errorf("pipe %q is defined twice", p.Name)
		}
		names[p.Name] = true
		for _, side := range []struct {
			key string
			end *PipeEnd
		}{{"a", &p.A}, {"b", &p.B}} {
			n, ok := m.get(side.key)
			if !ok {
				return m.at(side.key).Errorf("missing: give the pipe's end (domain, address)")
			}
			if err := d.pipeEnd(n, top, p, side.end); err != nil {
				return err
			}
		}
		if p.A.Domain == p.B.Domain {
			return m.at("b").Errorf("both ends are in domain %s", p.A.Domain)
		}
		for _, e := range []*PipeEnd{&p.A, &p.B} {
			if err := checkEndDevice(top, e, devices); err != nil {
				return err
			}
		}
		for _, v6 := range []bool{false, true} {
			for _, e := range []struct {
				end, other *PipeEnd
				key        string
			}{{&p.A, &p.B, "a"}, {&p.B, &p.A, "b"}} {
				if !hasFamilyPrefix(e.end.Routes, v6) {
					continue
				}
				gw, ok := firstOfFamily(e.other.Addrs, v6)
				if !ok {
					return e.end.At("routes").Errorf("routes IPv%d prefixes into the pipe, but the other end has no IPv%d address to route them to", fam(v6), fam(v6))
				}
				if !onLink(e.end.Addrs, gw) {
					return e.end.At("routes").Errorf("routes go via the other end's %s, which is in none of this end's subnets (%s): give both ends addresses in one subnet", gw, prefixList(e.end.Addrs, v6))
				}
			}
		}
		if n, ok := m.get("allow"); ok {
			flowNodes = append(flowNodes, n)
		} else {
			flowNodes = append(flowNodes, node{})
		}
		top.Pipes = append(top.Pipes, p)
	}
	// Flows after every pipe: a flow's origin may be a domain that
	// reaches the pipe through another pipe.
	for i, p := range top.Pipes {
		if flowNodes[i].n == nil {
			continue
		}
		if p.Allow, err = d.flows(flowNodes[i], top, p); err != nil {
			return err
		}
	}
	return nil
}

// checkEndDevice refuses a pipe end whose device another pipe end, a
// vxlan device or a moved interface of the same namespace already names.
func checkEndDevice(top *Config, e *PipeEnd, devices map[[2]string]Pos) error {
	key := [2]string{e.Domain, e.Device}
	if at, dup := devices[key]; dup {
		return e.At("device").Errorf("device %s in %s is also the pipe end at %s; give one of them another device name", e.Device, e.Domain, at.short())
	}
	devices[key] = e.At("device")
	body := top
	if e.Domain != HostDomain {
		dm := top.Domain(e.Domain)
		body = dm.Config
		if contains(dm.Interfaces, e.Device) {
			return e.At("device").Errorf("%s is also an interface moved into %s; give the pipe end another device name", e.Device, e.Domain)
		}
	}
	for _, x := range body.VXLANs {
		if x.Name == e.Device {
			return e.At("device").Errorf("%s is also a vxlan device of %s (%s); give the pipe end another device name", e.Device, e.Domain, x.At("name").short())
		}
	}
	return nil
}

func firstOfFamily(ps []netip.Prefix, v6 bool) (netip.Addr, bool) {
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// onLink: a is in the subnet of one of the addresses.
func onLink(addrs []netip.Prefix, a netip.Addr) bool {
	for _, p := range addrs {
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

func prefixList(ps []netip.Prefix, v6 bool) string {
	var out []string
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			out = append(out, p.Masked().String())
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func (d *decoder) pipeEnd(n node, top *Config, p *Pipe, end *PipeEnd) error {
	m, err := n.mapping("domain", "device", "address", "routes", "masquerade", "netmap")
	if err != nil {
		return err
	}
	end.positions = m.at
	if end.Domain, err = requiredString(m, "domain"); err != nil {
		return err
	}
	if end.Domain != HostDomain && top.Domain(end.Domain) == nil {
		return m.at("domain").Errorf("no domain %q; domains: %s", end.Domain, domainNames(top))
	}
	end.Device = p.Name
	if dn, ok := m.get("device"); ok {
		if end.Device, err = dn.scalar(); err != nil {
			return err
		}
		if err := checkDevice(dn.pos, end.Device); err != nil {
			return err
		}
	}
	if _, ok := m.get("address"); ok {
		if end.Addrs, err = hostPrefixes(m, "address"); err != nil {
			return err
		}
	}
	if _, err := optPrefixes(m, "routes", &end.Routes); err != nil {
		return err
	}
	if mn, ok := m.get("masquerade"); ok {
		if end.Masquerade, err = boolValue(mn); err != nil {
			return err
		}
	}
	if nn, ok := m.get("netmap"); ok {
		nm, err := nn.mapping("outside", "inside")
		if err != nil {
			return err
		}
		var ps [2][]netip.Prefix
		for i, key := range []string{"outside", "inside"} {
			if ps[i], err = prefixes(nm, key); err != nil {
				return err
			}
			if len(ps[i]) != 1 {
				return nm.at(key).Errorf("give one prefix")
			}
		}
		out, in := ps[0][0], ps[1][0]
		if out.Addr().Is4() != in.Addr().Is4() || out.Bits() != in.Bits() {
			return nn.pos.Errorf("outside %s and inside %s must be of the same family and size", out, in)
		}
		end.Netmap = &Netmap{Outside: out, Inside: in}
	}
	return nil
}

// hostPrefixes reads interface addresses with their prefix length
// ("10.255.0.1/30"): host bits are expected here.
func hostPrefixes(m *mapping, key string) ([]netip.Prefix, error) {
	n, _ := m.get(key)
	items, err := n.list()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, it := range items {
		s, err := it.scalar()
		if err != nil {
			return nil, err
		}
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return nil, it.pos.Errorf("%q is not an address with a prefix length (e.g. 10.255.0.1/30)", s)
		}
		out = append(out, p)
	}
	return out, nil
}

func (d *decoder) flows(n node, top *Config, p *Pipe) ([]Flow, error) {
	items, err := n.seqOnly()
	if err != nil {
		return nil, err
	}
	// Not nil even when empty: `allow: []` is a closed pipe (replies
	// only), not an open one.
	out := []Flow{}
	for _, it := range items {
		m, err := it.mapping("from", "to", "proto", "port")
		if err != nil {
			return nil, err
		}
		f := Flow{positions: m.at}
		if err := flowOrigin(m, top, p, &f); err != nil {
			return nil, err
		}
		if _, err := optPrefixes(m, "to", &f.To); err != nil {
			return nil, err
		}
		if err := protoPorts(m, &f.Proto, []keyed[[]state.PortRange]{{"port", &f.Ports}}); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// flowOrigin reads `from`: a domain's name (host for the top level), or
// source prefixes. A domain that is not an end of the pipe must have a
// pipe to one of its ends: that end forwards its traffic into this pipe.
func flowOrigin(m *mapping, top *Config, p *Pipe, f *Flow) error {
	n, ok := m.get("from")
	if !ok {
		return m.at("from").Errorf("missing: the flow's origin: a domain (%s) or source prefixes", domainNames(top))
	}
	if s, err := n.scalar(); err == nil && (s == HostDomain || top.Domain(s) != nil) {
		f.From = s
		if p.End(s) != nil {
			return nil
		}
		for _, e := range []*PipeEnd{&p.A, &p.B} {
			if len(top.PipeDevices(e.Domain, s)) > 0 {
				return nil
			}
		}
		return n.pos.Errorf("%s is not an end of pipe %s (%s, %s) and has no pipe to either end to come through; declare its traffic by source prefixes", s, p.Name, p.A.Domain, p.B.Domain)
	}
	srcs, err := prefixes(m, "from")
	if _, scalarErr := n.scalar(); err != nil && scalarErr == nil {
		return n.pos.Errorf("neither a domain (%s) nor source prefixes", domainNames(top))
	}
	if err != nil {
		return err
	}
	f.Sources = srcs
	return nil
}

func domainNames(c *Config) string {
	names := []string{HostDomain}
	for _, d := range c.Domains {
		names = append(names, d.Name)
	}
	return strings.Join(names, ", ")
}

func hasFamilyPrefix(ps []netip.Prefix, v6 bool) bool {
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

func fam(v6 bool) int {
	if v6 {
		return 6
	}
	return 4
}

// VXLAN is a vxlan device the config creates: one VNI carries one
// domain's traffic over a shared underlay (several routing domains over
// one tunnel between two sites).
type VXLAN struct {
	Name   string
	VNI    uint32
	Local  netip.Addr
	Remote netip.Addr
	// Dev is the underlay device; for a domain's vxlan it is a device of
	// the top namespace (the tunnel), where the underlay socket stays.
	Dev   string
	Port  uint16
	Addrs []netip.Prefix

	positions
}

func (d *decoder) vxlans(v node) error {
	items, err := v.seqOnly()
	if err != nil {
		return err
	}
	for _, it := range items {
		m, err := it.mapping("name", "vni", "local", "remote", "dev", "port", "address")
		if err != nil {
			return err
		}
		x := &VXLAN{positions: m.at, Port: 4789}
		if x.Name, err = requiredString(m, "name"); err != nil {
			return err
		}
		if err := checkDevice(m.at("name"), x.Name); err != nil {
			return err
		}
		if err := requiredUint(m, "vni", 1, 1<<24-1, "the VXLAN network identifier (1-16777215)", &x.VNI); err != nil {
			return err
		}
		if err := scalarsInto(m, []keyed[netip.Addr]{{"local", &x.Local}, {"remote", &x.Remote}}, addrScalar); err != nil {
			return err
		}
		if !x.Remote.IsValid() {
			return m.at("remote").Errorf("missing: the other site's underlay address")
		}
		if x.Local.IsValid() && x.Local.Is4() != x.Remote.Is4() {
			return m.at("local").Errorf("local %s and remote %s are of different families", x.Local, x.Remote)
		}
		if err := scalarsInto(m, []keyed[string]{{"dev", &x.Dev}}, deviceScalar); err != nil {
			return err
		}
		if err := optUint(m, "port", 1, 65535, &x.Port); err != nil {
			return err
		}
		if _, ok := m.get("address"); ok {
			if x.Addrs, err = hostPrefixes(m, "address"); err != nil {
				return err
			}
		}
		d.cfg.VXLANs = append(d.cfg.VXLANs, x)
	}
	return nil
}

// short is the position as LINE:COL, for pointing at another place of
// the same file.
func (p Pos) short() string {
	if p.Line == 0 {
		return p.Field
	}
	return fmt.Sprintf("%d:%d (%s)", p.Line, p.Col, p.Field)
}
