package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/tunroute/tunroute/internal/state"
)

// Options change how a config is read.
type Options struct {
	// TableNames maps table names to numbers (iproute2's rt_tables). Nil
	// means read them from the system (SystemTableNames).
	TableNames map[string]uint32
	// Lists, if set, keeps the route lists read for the next read (a
	// daemon's): a list whose text changed by a few lines costs those
	// lines. Nil reads every list whole.
	Lists *ListCache
}

// Load reads and validates the config file at path.
func Load(path string, opt Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, path, opt)
}

// Parse validates a config held in memory; name is used in errors.
func Parse(data []byte, name string, opt Options) (*Config, error) {
	if opt.TableNames == nil {
		opt.TableNames = SystemTableNames()
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("%s:%s", name, yamlSyntaxError(err))
	}
	if len(f.Docs) > 1 {
		return nil, fmt.Errorf("%s: holds %d YAML documents; tunroute reads one", name, len(f.Docs))
	}
	var root ast.Node
	if len(f.Docs) == 1 {
		root = f.Docs[0].Body
	}
	d := &decoder{file: name, tableNames: opt.TableNames, lists: opt.Lists}
	var gen uint64
	if opt.Lists != nil {
		gen = opt.Lists.begin()
	}
	cfg, err := d.config(newNode(root, name, ""))
	if err != nil {
		return nil, err
	}
	if opt.Lists != nil {
		opt.Lists.sweep(gen) // the lists this config no longer reads
	}
	return cfg, nil
}

// yamlSyntaxError turns goccy's "[3:5] message" into "3:5: message".
func yamlSyntaxError(err error) string {
	msg := err.Error()
	if m := regexp.MustCompile(`^\[(\d+):(\d+)\]\s*(.*)`).FindStringSubmatch(msg); m != nil {
		first := strings.SplitN(m[3], "\n", 2)[0]
		return m[1] + ":" + m[2] + ": yaml: " + strings.TrimSpace(first)
	}
	return " yaml: " + strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
}

type decoder struct {
	file       string
	tableNames map[string]uint32
	lists      *ListCache
	cfg        *Config
}

// bodyKeys are what a config and each of its domains may hold.
var bodyKeys = []string{"settings", "tables", "vpns", "vxlan", "devices", "identities", "groups", "routes", "local", "redirect", "select", "killswitch", "bgp"}

func (d *decoder) config(root node) (*Config, error) {
	cfg := &Config{File: d.file, TableBase: DefaultTableBase, PriorityBase: DefaultPriorityBase,
		SelectPriorityBase: DefaultSelectPriorityBase, MarkMask: DefaultMarkMask, Tables: map[string]uint32{}}
	m, err := root.mapping(append(bodyKeys, "domains", "pipes", "assert")...)
	if err != nil {
		return nil, err
	}
	if err := d.body(m, cfg); err != nil {
		return nil, err
	}
	if v, ok := m.get("domains"); ok {
		if err := d.domains(v, cfg); err != nil {
			return nil, err
		}
	}
	if v, ok := m.get("pipes"); ok {
		if err := d.pipes(v, cfg); err != nil {
			return nil, err
		}
	}
	if err := d.resolveBGP(cfg); err != nil {
		return nil, err
	}
	if v, ok := m.get("assert"); ok {
		d.cfg = cfg
		if err := d.asserts(v); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// body decodes the routing language into cfg: the top level of a config,
// or a domain.
func (d *decoder) body(m *mapping, cfg *Config) error {
	saved := d.cfg
	d.cfg = cfg
	defer func() { d.cfg = saved }()
	// The sections in the order they are read: a later one refers to
	// what an earlier one defines (identities name VPNs and devices,
	// routes name identities and groups). A step without a key is a
	// check that runs whether or not its section was given.
	steps := []struct {
		key  string
		read func(node) error
	}{
		{"settings", d.settings},
		{"tables", d.tables},
		{"vpns", d.vpns},
		{"vxlan", d.vxlans},
		{"devices", d.devices},
		{"identities", func(v node) error { return appendSeq(v, d.identity, &cfg.Identities) }},
		{"", func(node) error { return d.checkIdentities() }},
		{"groups", d.groups},
		{"routes", func(v node) error { return appendSeq(v, d.route, &cfg.Routes) }},
		{"local", func(v node) error { return appendSeq(v, d.local, &cfg.Local) }},
		{"redirect", func(v node) (err error) { cfg.Redirect, err = d.redirect(v); return err }},
		{"select", func(v node) error { return appendSeq(v, d.selector, &cfg.Select) }},
		{"killswitch", func(v node) (err error) { cfg.KillSwitch, err = d.killswitch(v); return err }},
		{"", func(node) error { return d.checkGroups() }},
		{"bgp", d.bgp},
	}
	for _, s := range steps {
		var v node
		if s.key != "" {
			var ok bool
			if v, ok = m.get(s.key); !ok {
				continue
			}
		}
		if err := s.read(v); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) settings(v node) error {
	m, err := v.mapping("table_base", "priority_base", "select_priority_base", "mark_mask", "take_back_routes", "multipath_hash")
	if err != nil {
		return err
	}
	if n, ok := m.get("table_base"); ok {
		t, err := uintValue(n, 1, 0xffffffff)
		if err != nil {
			return err
		}
		if _, bad := state.ReservedTables[uint32(t)]; bad {
			return n.pos.Errorf("table %d is reserved", t)
		}
		d.cfg.TableBase = uint32(t)
	}
	if err := optUint(m, "priority_base", 1, 32765, &d.cfg.PriorityBase); err != nil {
		return err
	}
	if err := optUint(m, "select_priority_base", 1, 32765, &d.cfg.SelectPriorityBase); err != nil {
		return err
	}
	if n, ok := m.get("mark_mask"); ok {
		mk, err := uintValue(n, 1, 0xffffffff)
		if err != nil {
			return err
		}
		if contiguous(uint32(mk)) < 2 {
			return n.pos.Errorf("0x%x: the mark mask must be one run of at least 2 contiguous bits (e.g. 0x00ff0000)", mk)
		}
		d.cfg.MarkMask = uint32(mk)
	}
	if n, ok := m.get("take_back_routes"); ok {
		if d.cfg.TakeBackRoutes, err = boolValue(n); err != nil {
			return err
		}
	}
	if n, ok := m.get("multipath_hash"); ok {
		s, err := n.scalar()
		if err != nil {
			return err
		}
		if s != MultipathL3 && s != MultipathL4 {
			return n.pos.Errorf("%q: the multipath hash is l3 (addresses) or l4 (addresses and ports)", s)
		}
		d.cfg.MultipathHash = s
	}
	return nil
}

// The multipath hashes settings.multipath_hash names.
const (
	MultipathL3 = "l3"
	MultipathL4 = "l4"
)

var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)

func (d *decoder) tables(v node) error {
	m, err := v.mapping(anyKey(v)...)
	if err != nil {
		return err
	}
	for _, k := range m.keys {
		n := m.values[k]
		if !nameRE.MatchString(k) {
			return n.pos.Errorf("table name must start with a letter and hold only letters, digits, '_', '.', '-'")
		}
		t, err := uintValue(n, 1, 0xffffffff)
		if err != nil {
			return err
		}
		if err := checkOwnTable(n.pos, uint32(t)); err != nil {
			return err
		}
		d.cfg.Tables[k] = uint32(t)
	}
	return nil
}

// anyKey lists a mapping's own keys, for mappings whose keys are names.
func anyKey(v node) []string {
	var keys []string
	switch m := v.n.(type) {
	case *ast.MappingNode:
		for _, p := range m.Values {
			keys = append(keys, p.Key.GetToken().Value)
		}
	case *ast.MappingValueNode:
		keys = append(keys, m.Key.GetToken().Value)
	}
	return keys
}

func checkOwnTable(p Pos, t uint32) error {
	if who, bad := state.ReservedTables[t]; bad {
		return p.Errorf("table %d is reserved (%s); pick another or leave it out to have one allocated", t, who)
	}
	return nil
}

func (d *decoder) identity(v node) (*Identity, error) {
	m, err := v.mapping("name", "vpn", "device", "address", "addresses", "gateway", "table", "priority", "health")
	if err != nil {
		return nil, err
	}
	id := &Identity{positions: m.at, AutoAddresses: true}
	if n, ok := m.get("health"); ok {
		if id.Health, err = d.health(n); err != nil {
			return nil, err
		}
	}
	if n, ok := m.get("vpn"); ok {
		if id.VPN, err = d.vpnRef(n); err != nil {
			return nil, err
		}
	}
	name, err := requiredName(m)
	if err != nil {
		return nil, err
	}
	id.Name = name
	if _, ok := m.get("device"); ok || id.VPN == "" {
		dev, err := requiredString(m, "device")
		if err != nil {
			return nil, err
		}
		if err := checkDevice(m.at("device"), dev); err != nil {
			return nil, err
		}
		id.Device = dev
	}
	if _, a := m.get("address"); a {
		if _, b := m.get("addresses"); b {
			return nil, m.at("addresses").Errorf("give either address or addresses, not both")
		}
	}
	for _, key := range []string{"address", "addresses"} {
		n, ok := m.get(key)
		if !ok {
			continue
		}
		id.AutoAddresses = false
		err := eachScalar(n, func(it node, s string) error {
			if s == "auto" {
				id.AutoAddresses = true
				return nil
			}
			a, err := parseAddr(it.pos, s)
			if err != nil {
				return err
			}
			id.Addresses = append(id.Addresses, a)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if id.AutoAddresses && len(id.Addresses) > 0 {
			return nil, n.pos.Errorf(`"auto" cannot be mixed with literal addresses`)
		}
		if !id.AutoAddresses && len(id.Addresses) == 0 {
			return nil, n.pos.Errorf(`list at least one address, or "auto"`)
		}
	}
	if n, ok := m.get("gateway"); ok {
		items, err := n.list()
		if err != nil {
			return nil, err
		}
		id.Gateway = GatewayLiteral
		var seen4, seen6 bool
		for _, it := range items {
			s, err := it.scalar()
			if err != nil {
				return nil, err
			}
			switch s {
			case "auto", "none":
				if len(items) > 1 {
					return nil, it.pos.Errorf("%q stands alone, not in a list", s)
				}
				id.Gateway = map[string]GatewayMode{"auto": GatewayAuto, "none": GatewayNone}[s]
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, it.pos.Errorf("%q is not an IP address, \"auto\" or \"none\"", s)
			}
			if (a.Is4() && seen4) || (a.Is6() && seen6) {
				return nil, it.pos.Errorf("a second gateway of the same family; give at most one IPv4 and one IPv6 gateway")
			}
			seen4, seen6 = seen4 || a.Is4(), seen6 || a.Is6()
			id.Gateways = append(id.Gateways, a)
		}
		if id.Gateway == GatewayLiteral && len(id.Gateways) == 0 {
			return nil, n.pos.Errorf(`give a gateway address, "auto" or "none"`)
		}
	}
	if n, ok := m.get("table"); ok {
		t, err := d.table(n, true)
		if err != nil {
			return nil, err
		}
		id.Table = t
	}
	if err := optUint(m, "priority", 1, 32765, &id.Priority); err != nil {
		return nil, err
	}
	return id, nil
}

func (d *decoder) checkIdentities() error {
	names := map[string]bool{}
	tables := map[uint32]string{}
	prios := map[uint32]string{}
	for _, id := range d.cfg.Identities {
		if names[id.Name] {
			return id.At("name").Errorf("identity %q is defined twice", id.Name)
		}
		names[id.Name] = true
		if id.Table != 0 {
			if other, dup := tables[id.Table]; dup {
				return id.At("table").Errorf("table %d is already the table of identity %q", id.Table, other)
			}
			tables[id.Table] = id.Name
		}
		if id.Priority != 0 {
			if other, dup := prios[id.Priority]; dup {
				return id.At("priority").Errorf("priority %d is already the priority of identity %q", id.Priority, other)
			}
			prios[id.Priority] = id.Name
		}
	}
	return nil
}

// optTable sets *dst to the table under the key "table" when it is given
// (own as for table).
func (d *decoder) optTable(m *mapping, own bool, dst *uint32) error {
	n, ok := m.get("table")
	if !ok {
		return nil
	}
	t, err := d.table(n, own)
	if err != nil {
		return err
	}
	*dst = t
	return nil
}

// table parses a table number or name. own: the table will hold
// tunroute's identity routes, so reserved tables are refused.
func (d *decoder) table(n node, own bool) (uint32, error) {
	s, err := n.scalar()
	if err != nil {
		return 0, err
	}
	var t uint32
	if v, err := strconv.ParseUint(s, 0, 32); err == nil {
		t = uint32(v)
	} else if v, ok := d.cfg.Tables[s]; ok {
		t = v
	} else if v, ok := d.tableNames[s]; ok {
		t = v
	} else {
		return 0, n.pos.Errorf("unknown table %q: give a number, or name it under `tables:` or in /etc/iproute2/rt_tables", s)
	}
	if t == 0 {
		return 0, n.pos.Errorf("table 0 is not a table")
	}
	if own {
		return t, checkOwnTable(n.pos, t)
	}
	if t == state.TableLocal {
		return 0, n.pos.Errorf("the local table belongs to the kernel")
	}
	return t, nil
}

var routeTypes = map[string]state.RouteType{"unicast": state.RouteUnicast, "blackhole": state.RouteBlackhole,
	"unreachable": state.RouteUnreachable, "prohibit": state.RouteProhibit, "throw": state.RouteThrow}

func (d *decoder) route(v node) (*Route, error) {
	m, err := v.mapping("to", "to_file", "via", "type", "table", "metric")
	if err != nil {
		return nil, err
	}
	r := &Route{positions: m.at, Type: state.RouteUnicast, Table: state.TableMain}
	if n, ok := m.get("to_file"); ok {
		if _, both := m.get("to"); both {
			return nil, n.pos.Errorf("give either to or to_file, not both")
		}
		s, err := n.scalar()
		if err != nil {
			return nil, err
		}
		if r.File, r.To, err = readPrefixFile(d.file, s, d.lists); err != nil {
			return nil, n.pos.Errorf("%v", err)
		}
	} else if r.To, err = prefixes(m, "to"); err != nil {
		return nil, err
	}
	if n, ok := m.get("type"); ok {
		s, err := n.scalar()
		if err != nil {
			return nil, err
		}
		t, ok := routeTypes[s]
		if !ok {
			return nil, n.pos.Errorf("unknown route type %q; expected unicast, blackhole, unreachable, prohibit or throw", s)
		}
		r.Type = t
	}
	if n, ok := m.get("via"); ok {
		if r.Type != state.RouteUnicast {
			return nil, n.pos.Errorf("a %s route goes nowhere; remove `via` or the type", r.Type)
		}
		if r.Via, err = d.viaRef(n); err != nil {
			return nil, err
		}
	} else if r.Type == state.RouteUnicast {
		return nil, m.at("via").Errorf("missing: name the identity the destinations go through, or give a type (blackhole, unreachable, prohibit, throw)")
	}
	if err := d.optTable(m, false, &r.Table); err != nil {
		return nil, err
	}
	if err := optUint(m, "metric", 0, 0xffffffff, &r.Metric); err != nil {
		return nil, err
	}
	return r, nil
}

func (d *decoder) local(v node) (*Local, error) {
	m, err := v.mapping("to", "via", "source", "add_address", "table", "priority")
	if err != nil {
		return nil, err
	}
	l := &Local{positions: m.at}
	if l.To, err = prefixes(m, "to"); err != nil {
		return nil, err
	}
	n, ok := m.get("via")
	if !ok {
		return nil, m.at("via").Errorf("missing: name the identity whose device carries the traffic")
	}
	if l.Via, err = d.identityRef(n); err != nil {
		return nil, err
	}
	src, err := requiredString(m, "source")
	if err != nil {
		return nil, err
	}
	if l.Source, err = parseAddr(m.at("source"), src); err != nil {
		return nil, err
	}
	for _, p := range l.To {
		if p.Addr().Is4() != l.Source.Is4() {
			return nil, m.at("to").Errorf("%s and source %s are of different families; use one local entry per family", p, l.Source)
		}
	}
	if err := scalarsInto(m, []keyed[string]{{"add_address", &l.AddAddress}}, deviceScalar); err != nil {
		return nil, err
	}
	if err := d.optTable(m, true, &l.Table); err != nil {
		return nil, err
	}
	if err := optUint(m, "priority", 1, 32765, &l.Priority); err != nil {
		return nil, err
	}
	return l, nil
}

func (d *decoder) redirect(v node) (*Redirect, error) {
	m, err := v.mapping("via", "servers", "lan", "families")
	if err != nil {
		return nil, err
	}
	items := map[string]Pos{}
	r := &Redirect{positions: func(f string) Pos {
		if p, ok := items[f]; ok {
			return p
		}
		return m.at(f)
	}}
	n, ok := m.get("via")
	if !ok {
		return nil, m.at("via").Errorf("missing: name the identity (the tunnel) that becomes the default gateway")
	}
	if r.Via, err = d.viaRef(n); err != nil {
		return nil, err
	}
	n, ok = m.get("servers")
	if !ok {
		if d.allFromVPNs(r.Via) {
			return r, d.redirectRest(m, r)
		}
		return nil, m.at("servers").Errorf("missing: list the VPN servers' real addresses (or take the identity from a vpn, whose hook reports them); without a route to them via the original gateway the tunnel would be routed into itself")
	}
	servers, err := n.list()
	if err != nil {
		return nil, err
	}
	for i, it := range servers {
		s, err := it.scalar()
		if err != nil {
			return nil, err
		}
		a, err := parseAddr(it.pos, s)
		if err != nil {
			return nil, err
		}
		r.Servers = append(r.Servers, a)
		items[fmt.Sprintf("servers[%d]", i)] = it.pos
	}
	return r, d.redirectRest(m, r)
}

func (d *decoder) redirectRest(m *mapping, r *Redirect) error {
	if _, err := optPrefixes(m, "lan", &r.LAN); err != nil {
		return err
	}
	if n, ok := m.get("families"); ok {
		err := eachScalar(n, func(it node, s string) error {
			switch s {
			case "ipv4":
				r.IPv4 = true
			case "ipv6":
				r.IPv6 = true
			default:
				return it.pos.Errorf("unknown family %q; expected ipv4 or ipv6", s)
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.FamiliesGiven = true
		if !r.IPv4 && !r.IPv6 {
			return n.pos.Errorf("name at least one family")
		}
	}
	return nil
}

// allFromVPNs: the identity, or every member of the group, comes from a
// vpn whose hook reports its servers.
func (d *decoder) allFromVPNs(name string) bool {
	if g := d.cfg.Group(name); g != nil {
		for _, m := range g.Members() {
			if d.cfg.Identity(m).VPN == "" {
				return false
			}
		}
		return true
	}
	return d.cfg.Identity(name).VPN != ""
}

func (d *decoder) identityRef(n node) (string, error) {
	s, err := n.scalar()
	if err != nil {
		return "", err
	}
	if d.cfg.Identity(s) == nil && d.cfg.Group(s) != nil {
		return "", n.pos.Errorf("%q is a group; only routes, the redirect and selectors take a group, here name an identity", s)
	}
	if err := refTo(n.pos, d.cfg.Identities, "identity", "identities", s); err != nil {
		return "", err
	}
	return s, nil
}

func requiredString(m *mapping, key string) (string, error) {
	n, ok := m.get(key)
	if !ok {
		return "", m.at(key).Errorf("missing")
	}
	s, err := n.scalar()
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", n.pos.Errorf("is empty")
	}
	return s, nil
}

// requiredName reads the entry's name: a letter, then letters, digits,
// '_', '.', '-'.
func requiredName(m *mapping) (string, error) {
	name, err := requiredString(m, "name")
	if err != nil {
		return "", err
	}
	if !nameRE.MatchString(name) {
		return "", m.at("name").Errorf("%q: a name starts with a letter and holds only letters, digits, '_', '.', '-'", name)
	}
	return name, nil
}

func uintValue(n node, min, max uint64) (uint64, error) {
	s, err := n.scalar()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil || v < min || v > max {
		return 0, n.pos.Errorf("%q is not a whole number from %d to %d", s, min, max)
	}
	return v, nil
}

// optUint sets *dst to the whole number under key, from min to max, when
// the key is given; *dst keeps its default otherwise.
func optUint[T ~uint8 | ~uint16 | ~uint32 | ~int](m *mapping, key string, min, max uint64, dst *T) error {
	n, ok := m.get(key)
	if !ok {
		return nil
	}
	v, err := uintValue(n, min, max)
	if err != nil {
		return err
	}
	*dst = T(v)
	return nil
}

// requiredUint sets *dst to the whole number under key, from min to max;
// a missing key is an error that says (what) which number it wants.
func requiredUint[T ~uint8 | ~uint16 | ~uint32 | ~int](m *mapping, key string, min, max uint64, what string, dst *T) error {
	if _, ok := m.get(key); !ok {
		return m.at(key).Errorf("missing: %s", what)
	}
	return optUint(m, key, min, max, dst)
}

func parseAddr(p Pos, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, perr := netip.ParsePrefix(s); perr == nil {
			return netip.Addr{}, p.Errorf("%q is a prefix; give a single address here", s)
		}
		return netip.Addr{}, p.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, p.Errorf("%q: zones are not supported here", s)
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	return a, nil
}

// prefixes reads a list of prefixes; a bare address means a host prefix.
func prefixes(m *mapping, key string) ([]netip.Prefix, error) {
	n, ok := m.get(key)
	if !ok {
		return nil, m.at(key).Errorf("missing")
	}
	items, err := n.list()
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, n.pos.Errorf("is empty")
	}
	out := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		s, err := it.scalar()
		if err != nil {
			return nil, err
		}
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, it.pos.Errorf("%v", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// optPrefixes sets *dst to the list of prefixes under key when the key is
// given, and says whether it was; *dst keeps its default otherwise.
func optPrefixes(m *mapping, key string, dst *[]netip.Prefix) (given bool, err error) {
	if _, ok := m.get(key); !ok {
		return false, nil
	}
	*dst, err = prefixes(m, key)
	return err == nil, err
}

// ParsePrefix reads "10.0.0.0/8", "2001:db8::/32", a bare address (a host
// prefix) or "default" (only with a family: use 0.0.0.0/0 or ::/0).
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a prefix or address", s)
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a prefix", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q: IPv4-mapped prefixes are not supported", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

var errDevice = errors.New("bad device name")

// checkDevice applies the kernel's rules for interface names.
func checkDevice(p Pos, s string) error {
	if len(s) > 15 {
		return p.Errorf("%q: device names are at most 15 characters", s)
	}
	if s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\x00") {
		return p.Errorf("%q is not a valid device name", s)
	}
	return nil
}
