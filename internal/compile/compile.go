// Package compile turns a config plus facts about the live namespace into
// the desired State: the links, addresses, routes and rules tunroute owns.
// It is pure: the caller observes the namespace and applies the result.
package compile

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/prefixkey"
	"github.com/tunroute/tunroute/internal/state"
)

// Result is what a config compiles to.
type Result struct {
	// State holds only tunroute's own objects.
	State *state.State
	// Identities as resolved against the live namespace.
	Identities []Identity
	// Notes are facts worth telling the user (e.g. a family left out).
	Notes []string
	// Groups say which members of each failover or balance group carry
	// its traffic, and why.
	Groups []GroupState `json:",omitempty"`
	// Probes are the health checks to run: what each probe's socket is
	// bound to, the mark that sends it by its identity's table.
	Probes []Probe `json:",omitempty"`
	// Sysctls are what the namespace's routing wants set (the multipath
	// hash of balance groups): set in a namespace tunroute owns (a
	// routing domain), only reported (a note) in the one it runs in.
	Sysctls map[string]string `json:",omitempty"`
}

// Identity is a config identity with its addresses, gateways, table and
// priority settled.
type Identity struct {
	Name     string
	Device   string
	Table    uint32
	Priority uint32
	// Addrs are the identity's addresses with their prefix lengths.
	Addrs []netip.Prefix
	// Gateway per family; invalid means "straight out of the device".
	Gateway4, Gateway6 netip.Addr
	Has4, Has6         bool
	// VPN is the connection that supplies the identity, if any; Down is
	// set while it has no facts (the VPN is not up): nothing goes through
	// the identity then, and the kill switch holds.
	VPN  string `json:",omitempty"`
	Down bool   `json:",omitempty"`
	// paths are a balance group's members (nil for an identity).
	paths []path
}

// addr returns the identity's first address in the family.
func (id *Identity) addr(v6 bool) (netip.Addr, bool) {
	for _, p := range id.Addrs {
		if p.Addr().Is6() == v6 {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

func (id *Identity) gateway(v6 bool) netip.Addr {
	if v6 {
		return id.Gateway6
	}
	return id.Gateway4
}

type compiler struct {
	cfg    *config.Config
	vpns   map[string]*facts.VPN
	f      *live
	res    *Result
	ids    map[string]*Identity
	routes map[state.RouteKey]config.Pos
	addrs  map[state.AddrKey]bool
	// setKeys are the destinations route sets claim, by table.
	setKeys map[destKey]int32
	setPos  []config.Pos
	// set4 are the IPv4 list destinations (packed key, list index),
	// checked for clashes at the end; setMetric is each list's metric.
	set4      []prefixkey.Keyed
	setMetric []uint32
	// underlayNS is where a domain's vxlan underlay lives (the top
	// namespace); "" at the top level.
	underlayNS string
	// health is the prober's verdict per identity.
	health Health
}

// Compile resolves cfg against the observed namespace and the runtime
// facts the VPN hooks reported (by VPN name; nil when there are none).
func Compile(cfg *config.Config, observed *state.State, vpns map[string]*facts.VPN) (*Result, error) {
	return CompileHealth(cfg, observed, vpns, nil)
}

// CompileHealth is Compile with the health checks' verdicts: failover and
// balance groups use only the healthy members.
func CompileHealth(cfg *config.Config, observed *state.State, vpns map[string]*facts.VPN, health Health) (*Result, error) {
	c := newCompiler(cfg, observed, vpns)
	c.health = health
	if err := c.body(); err != nil {
		return nil, err
	}
	c.reportSysctls()
	return c.res, nil
}

func newCompiler(cfg *config.Config, observed *state.State, vpns map[string]*facts.VPN) *compiler {
	return &compiler{
		cfg:    cfg,
		vpns:   vpns,
		f:      newLive(observed),
		res:    &Result{State: &state.State{Version: state.Version, Namespace: observed.Namespace}},
		ids:    map[string]*Identity{},
		routes: map[state.RouteKey]config.Pos{},
		addrs:  map[state.AddrKey]bool{},
	}
}

// body compiles the routing language of one namespace.
func (c *compiler) body() error {
	cfg := c.cfg
	c.vxlans()
	c.devices()
	tables := c.allocator()
	for i, ci := range cfg.Identities {
		id, err := c.identity(ci, i, tables)
		if err != nil {
			return err
		}
		c.res.Identities = append(c.res.Identities, *id)
		c.ids[id.Name] = &c.res.Identities[len(c.res.Identities)-1]
	}
	for i := range c.res.Identities {
		if c.res.Identities[i].Down {
			continue
		}
		if err := c.identityObjects(&c.res.Identities[i], cfg.Identities[i]); err != nil {
			return err
		}
	}
	for i, l := range cfg.Local {
		if err := c.local(l, i, tables); err != nil {
			return err
		}
	}
	if err := c.groups(tables); err != nil {
		return err
	}
	if err := c.probes(); err != nil {
		return err
	}
	for _, r := range cfg.Routes {
		if err := c.route(r); err != nil {
			return err
		}
	}
	if cfg.Redirect != nil {
		if err := c.redirect(cfg.Redirect); err != nil {
			return err
		}
	}
	c.pushedRoutes()
	if err := c.wireGuardRouting(tables); err != nil {
		return err
	}
	if err := c.checkLists(); err != nil {
		return err
	}
	for i, s := range cfg.Select {
		if err := c.selector(s, i); err != nil {
			return err
		}
	}
	if cfg.KillSwitch != nil {
		if err := c.killswitch(cfg.KillSwitch); err != nil {
			return err
		}
	}
	if cfg.TakeBackRoutes {
		for i := range c.res.State.Routes {
			c.res.State.Routes[i].TakeBack = true
		}
	}
	return nil
}

func (c *compiler) note(format string, args ...any) {
	c.res.Notes = append(c.res.Notes, fmt.Sprintf(format, args...))
}

// tableAllocator hands out table numbers from the configured base, never
// a reserved table nor one the config names explicitly.
type tableAllocator struct {
	next  uint32
	taken map[uint32]bool
}

func (c *compiler) allocator() *tableAllocator {
	a := &tableAllocator{next: c.cfg.TableBase, taken: map[uint32]bool{}}
	for _, id := range c.cfg.Identities {
		a.taken[id.Table] = true
	}
	for _, l := range c.cfg.Local {
		a.taken[l.Table] = true
	}
	// A route entry's table is the config's too: an identity's default
	// route must never land in a table a route list fills.
	for _, r := range c.cfg.Routes {
		a.taken[r.Table] = true
	}
	for _, t := range c.cfg.Tables {
		a.taken[t] = true
	}
	for _, d := range c.cfg.Devices {
		if d.WireGuard != nil && d.WireGuard.TableGiven {
			a.taken[d.WireGuard.Table] = true
		}
	}
	return a
}

func (a *tableAllocator) get() uint32 {
	for {
		t := a.next
		a.next++
		if _, reserved := state.ReservedTables[t]; reserved || a.taken[t] {
			continue
		}
		a.taken[t] = true
		return t
	}
}

func (c *compiler) identity(ci *config.Identity, index int, tables *tableAllocator) (*Identity, error) {
	id := &Identity{Name: ci.Name, Device: ci.Device, Table: ci.Table, Priority: ci.Priority, VPN: ci.VPN}
	if id.Table == 0 {
		id.Table = tables.get()
	}
	if id.Priority == 0 {
		id.Priority = c.cfg.PriorityBase + uint32(index)
	}
	var vf *facts.VPN
	if ci.VPN != "" {
		vf = c.vpns[ci.VPN]
		switch {
		case vf == nil || vf.Down:
			id.Down = true
			c.note("vpn %s is down: identity %s and what goes through it are not installed", ci.VPN, ci.Name)
			return id, nil
		case id.Device == "":
			id.Device = vf.Device
		case vf.Device != id.Device:
			return nil, ci.At("device").Errorf("the config says %s but vpn %s reports device %s", id.Device, ci.VPN, vf.Device)
		}
		if _, ok := c.f.links[id.Device]; !ok {
			id.Down = true
			c.note("vpn %s reported device %s, which no longer exists: identity %s and what goes through it are not installed", ci.VPN, id.Device, ci.Name)
			return id, nil
		}
	}
	if _, ok := c.f.links[id.Device]; !ok {
		return nil, ci.At("device").Errorf("device %s does not exist%s", id.Device, c.where())
	}
	if ci.AutoAddresses && vf != nil && len(vf.Addrs) > 0 {
		id.Addrs = append(id.Addrs, vf.Addrs...)
	} else if ci.AutoAddresses {
		for _, a := range c.f.globalAddrs(id.Device) {
			id.Addrs = append(id.Addrs, a.Prefix)
		}
		if len(id.Addrs) == 0 {
			return nil, ci.At("device").Errorf("%s has no global address%s; give the identity's address with `address:`", id.Device, c.where())
		}
	} else {
		for _, a := range ci.Addresses {
			p := netip.PrefixFrom(a, a.BitLen())
			if x, ok := c.f.addrOn(id.Device, a); ok {
				p = x.Prefix
			}
			id.Addrs = append(id.Addrs, p)
		}
	}
	for _, p := range id.Addrs {
		if p.Addr().Is6() {
			id.Has6 = true
		} else {
			id.Has4 = true
		}
	}
	gateway := ci.Gateway
	if vf != nil && gateway == config.GatewayAuto {
		// The hook knows the next hop inside the tunnel, if there is one.
		id.Gateway4, id.Gateway6 = vf.Gateway4, vf.Gateway6
		if !id.Has4 {
			id.Gateway4 = netip.Addr{}
		}
		if !id.Has6 {
			id.Gateway6 = netip.Addr{}
		}
		gateway = config.GatewayNone
	}
	switch gateway {
	case config.GatewayLiteral:
		for _, g := range ci.Gateways {
			if g.Is4() && !id.Has4 || g.Is6() && !id.Has6 {
				return nil, ci.At("gateway").Errorf("gateway %s: the identity has no IPv%d address", g, family(g))
			}
			if !c.f.connected(g, id.Device) {
				return nil, ci.At("gateway").Errorf("gateway %s is not reachable on %s: no connected route covers it%s", g, id.Device, c.where())
			}
			if g.Is4() {
				id.Gateway4 = g
			} else {
				id.Gateway6 = g
			}
		}
		for _, v6 := range []bool{false, true} {
			if id.has(v6) && !id.gateway(v6).IsValid() {
				a, _ := id.addr(v6)
				return nil, ci.At("gateway").Errorf("the identity has IPv%d address %s but no IPv%d gateway; add one, or use auto or none", fam(v6), a, fam(v6))
			}
		}
	case config.GatewayAuto:
		for _, v6 := range []bool{false, true} {
			if !id.has(v6) {
				continue
			}
			def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if v6 {
				def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			r, ok := c.f.mainRoute(def, id.Device)
			if !ok || r.Dst.Bits() != 0 {
				if ci.AutoAddresses {
					id.drop(v6)
					c.note("identity %s: no IPv%d default route via %s in the main table; IPv%d left out of the identity", id.Name, fam(v6), id.Device, fam(v6))
					continue
				}
				return nil, ci.At("gateway").Errorf("cannot discover the IPv%d gateway: the main table has no default route via %s%s", fam(v6), id.Device, c.where())
			}
			for _, nh := range r.Nexthops {
				if nh.Dev == id.Device && nh.Gateway.IsValid() && nh.Gateway.Is6() == v6 {
					if v6 {
						id.Gateway6 = nh.Gateway
					} else {
						id.Gateway4 = nh.Gateway
					}
					break
				}
			}
		}
		if !id.Has4 && !id.Has6 {
			return nil, ci.At("gateway").Errorf("cannot discover a gateway: the main table has no default route via %s%s", id.Device, c.where())
		}
	}
	return id, nil
}

func (id *Identity) has(v6 bool) bool {
	if v6 {
		return id.Has6
	}
	return id.Has4
}

func (id *Identity) drop(v6 bool) {
	kept := id.Addrs[:0]
	for _, p := range id.Addrs {
		if p.Addr().Is6() != v6 {
			kept = append(kept, p)
		}
	}
	id.Addrs = kept
	if v6 {
		id.Has6 = false
	} else {
		id.Has4 = false
	}
}

// identityObjects emits the dual identity's objects for one identity: a table with
// the identity's connected prefixes and a default route, and a
// `from ADDR iif lo lookup TABLE` rule per address.
func (c *compiler) identityObjects(id *Identity, ci *config.Identity) error {
	at := ci.At("name")
	for _, p := range id.Addrs {
		if p.Bits() < p.Addr().BitLen() {
			r := c.deviceRoute(p.Masked(), id.Device, netip.Addr{}, p.Addr(), id.Table)
			if err := c.addRoute(r, at); err != nil {
				return err
			}
		}
	}
	for _, v6 := range []bool{false, true} {
		src, ok := id.addr(v6)
		if !ok {
			continue
		}
		r := c.deviceRoute(anyPrefix(v6), id.Device, id.gateway(v6), src, id.Table)
		if err := c.addRoute(r, at); err != nil {
			return err
		}
	}
	for _, p := range id.Addrs {
		rule := state.NewRule(fam(p.Addr().Is6()))
		rule.Priority = id.Priority
		rule.Src = netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
		rule.IIF = "lo"
		rule.Table = id.Table
		rule.Protocol = state.Proto
		c.res.State.Rules = append(c.res.State.Rules, rule)
	}
	return nil
}

// local emits the local traffic table, the "iproute2 alias".
func (c *compiler) local(l *config.Local, index int, tables *tableAllocator) error {
	id := c.ids[l.Via]
	if id.Down {
		c.note("local[%d]: identity %s is down; its routes are not installed", index, id.Name)
		return nil
	}
	v6 := l.Source.Is6()
	table := l.Table
	if table == 0 {
		table = tables.get()
	}
	prio := l.Priority
	if prio == 0 {
		prio = config.DefaultLocalPriority + uint32(index)
	}
	if l.AddAddress != "" {
		if _, ok := c.f.links[l.AddAddress]; !ok {
			return l.At("add_address").Errorf("device %s does not exist%s", l.AddAddress, c.where())
		}
		if c.f.isLocal(l.Source) {
			c.note("local[%d]: %s is already on this host; not adding it to %s", index, l.Source, l.AddAddress)
		} else {
			a := state.Addr{Dev: l.AddAddress, Prefix: netip.PrefixFrom(l.Source, l.Source.BitLen()),
				Scope: state.ScopeUniverse, Proto: state.Proto}
			if v6 {
				a.Flags = state.AddrNoDAD
			}
			if !c.addrs[a.Key()] {
				c.addrs[a.Key()] = true
				c.res.State.Addrs = append(c.res.State.Addrs, a)
			}
		}
	} else if !c.f.isLocal(l.Source) {
		return l.At("source").Errorf("%s is not an address of this host; add it to a device, or set add_address: lo", l.Source)
	}
	if !id.has(v6) {
		return l.At("via").Errorf("identity %s has no IPv%d address", id.Name, fam(v6))
	}
	for _, p := range l.To {
		r := c.deviceRoute(p, id.Device, id.gateway(v6), l.Source, table)
		if err := c.addRoute(r, l.At("to")); err != nil {
			return err
		}
	}
	rule := state.NewRule(fam(v6))
	rule.Priority = prio
	rule.IIF = "lo"
	rule.Table = table
	rule.Protocol = state.Proto
	c.res.State.Rules = append(c.res.State.Rules, rule)
	return nil
}

// route emits one routes: entry.
func (c *compiler) route(cr *config.Route) error {
	if cr.File != "" {
		return c.routeSet(cr)
	}
	for _, p := range cr.To {
		v6 := p.Addr().Is6()
		var r state.Route
		if cr.Type == state.RouteUnicast {
			id := c.ids[cr.Via]
			if id.Down {
				c.note("route %s: identity %s is down; not installed", p, id.Name)
				continue
			}
			src, _ := id.addr(v6)
			var ok bool
			if r, ok = c.throughRoute(id, p, src, cr.Table); !ok || !id.has(v6) {
				return cr.At("via").Errorf("identity %s has no IPv%d address for %s", id.Name, fam(v6), p)
			}
		} else {
			r = state.Route{Table: cr.Table, Type: cr.Type, Dst: p, Protocol: state.Proto}
			if v6 {
				r.Metric = ipv6DefaultMetric
			}
		}
		if cr.Metric != 0 {
			r.Metric = cr.Metric
		}
		if err := c.addRoute(r, cr.At("to")); err != nil {
			return err
		}
	}
	return nil
}

// redirect emits the gateway redirect: two half-default routes per family into the
// tunnel, host routes to the servers via the original path, and LAN
// prefixes kept on their original path.
func (c *compiler) redirect(rd *config.Redirect) error {
	id := c.ids[rd.Via]
	if id.Down {
		c.note("redirect: identity %s is down; the default route is left as it is (the kill switch, if any, holds)", id.Name)
		return nil
	}
	servers := rd.Servers
	if len(servers) == 0 {
		servers = c.memberServers(rd.Via)
		if len(servers) == 0 {
			// tinc reports its server only at host-up: until then the
			// default route stays, and the kill switch, if any, holds.
			c.note("redirect: vpn %s has reported no server yet; the default route is left as it is until it does (list it under vpns[].servers to redirect at once)", id.VPN)
			return nil
		}
	}
	fams := []bool{}
	for _, v6 := range []bool{false, true} {
		want := id.has(v6)
		if rd.FamiliesGiven {
			want = (v6 && rd.IPv6) || (!v6 && rd.IPv4)
			if want && !id.has(v6) {
				return rd.At("families").Errorf("identity %s has no IPv%d address to redirect through", id.Name, fam(v6))
			}
		}
		if want {
			fams = append(fams, v6)
		}
	}
	for i, s := range servers {
		host := netip.PrefixFrom(s, s.BitLen())
		orig, ok := c.f.mainRoute(host, "")
		if !ok {
			return rd.At(fmt.Sprintf("servers[%d]", i)).Errorf("no route to %s in the main table (besides tunroute's own); cannot find the original gateway%s", s, c.where())
		}
		if routeUses(orig, id.Device) && id.Device != "" {
			return rd.At(fmt.Sprintf("servers[%d]", i)).Errorf("the route to %s already goes through %s, the tunnel itself", s, id.Device)
		}
		if orig.Dst.Bits() >= 2 && len(orig.Nexthops) == 1 && !orig.Nexthops[0].Gateway.IsValid() {
			c.note("redirect: server %s is on a connected network (%s); no host route needed", s, orig.Dst)
			continue
		}
		r := c.copyPath(host, orig)
		if prev, dup := c.routes[r.Key()]; dup && strings.HasPrefix(prev.Field, "routes[") {
			// The config routes the server itself (a tunnel pinned to
			// an uplink, or over a failover group of uplinks).
			c.note("redirect: server %s goes the way %s says", s, prev.Field)
			continue
		}
		if err := c.addRoute(r, rd.At("servers")); err != nil {
			return err
		}
	}
	for _, p := range rd.LAN {
		orig, ok := c.f.mainRoute(p, "")
		if !ok {
			return rd.At("lan").Errorf("no route to %s in the main table; nothing to keep local", p)
		}
		if orig.Dst.Bits() >= 2 {
			c.note("redirect: LAN %s already has a more specific route (%s) than the /1 routes; nothing to add", p, orig.Dst)
			continue
		}
		if err := c.addRoute(c.copyPath(p, orig), rd.At("lan")); err != nil {
			return err
		}
	}
	for _, v6 := range fams {
		src, _ := id.addr(v6)
		for _, half := range halves(v6) {
			r, _ := c.throughRoute(id, half, src, state.TableMain)
			if err := c.addRoute(r, rd.At("via")); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyPath makes a route to dst that leaves the way orig does.
func (c *compiler) copyPath(dst netip.Prefix, orig *state.Route) state.Route {
	r := state.Route{Table: state.TableMain, Type: state.RouteUnicast, Dst: dst, Protocol: state.Proto,
		Scope: orig.Scope, Flags: orig.Flags & state.NexthopOnlink}
	for _, nh := range orig.Nexthops {
		r.Nexthops = append(r.Nexthops, state.Nexthop{Gateway: nh.Gateway, Dev: nh.Dev, Weight: nh.Weight,
			Flags: nh.Flags & state.NexthopOnlink})
	}
	if dst.Addr().Is6() {
		r.Metric = ipv6DefaultMetric
		r.Scope = state.ScopeUniverse
	}
	return r
}

func halves(v6 bool) []netip.Prefix {
	if v6 {
		return []netip.Prefix{netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1")}
	}
	return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1")}
}

func anyPrefix(v6 bool) netip.Prefix {
	if v6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// ipv6DefaultMetric is what the kernel stores for an IPv6 route added
// with metric 0; desired routes carry it so they compare equal to what
// the kernel reports.
const ipv6DefaultMetric = 1024

// deviceRoute is `dst [via gw] dev dev src src table t` as iproute2 would
// send it: scope link without a gateway, universe with one (IPv6 routes
// are always universe and get the kernel's default metric).
func (c *compiler) deviceRoute(dst netip.Prefix, dev string, gw, src netip.Addr, table uint32) state.Route {
	r := state.Route{Table: table, Type: state.RouteUnicast, Dst: dst, Protocol: state.Proto, PrefSrc: src,
		Nexthops: []state.Nexthop{{Gateway: gw, Dev: dev}}}
	if !gw.IsValid() {
		r.Scope = state.ScopeLink
	}
	if dst.Addr().Is6() {
		r.Scope = state.ScopeUniverse
		r.Metric = ipv6DefaultMetric
	}
	return r
}

// addRoute adds r unless an identical route is already desired; two
// different routes with the same kernel identity are a config error.
func (c *compiler) addRoute(r state.Route, at config.Pos) error {
	k := r.Key()
	if prevI, dup := c.setKeys[keyOf(r.Table, r.Dst)]; dup && r.TOS == 0 {
		prev := c.setPos[prevI]
		return at.Errorf("route %s in table %s is also made by the list of %s", r.Dst, state.TableName(r.Table), prev.Field)
	}
	if prev, dup := c.routes[k]; dup {
		for i := range c.res.State.Routes {
			if c.res.State.Routes[i].Key() == k && c.res.State.Routes[i].Equal(&r) {
				return nil
			}
		}
		where := prev.Field
		if prev.Line > 0 {
			where = fmt.Sprintf("%s (line %d)", prev.Field, prev.Line)
		}
		return at.Errorf("route %s in table %s is also made by %s, differently", r.Dst, state.TableName(r.Table), where)
	}
	c.routes[k] = at
	c.res.State.Routes = append(c.res.State.Routes, r)
	return nil
}

func (c *compiler) where() string {
	if c.f.s.Namespace != "" {
		return " in namespace " + c.f.s.Namespace
	}
	return ""
}

func fam(v6 bool) int {
	if v6 {
		return 6
	}
	return 4
}

func family(a netip.Addr) int { return fam(a.Is6()) }
