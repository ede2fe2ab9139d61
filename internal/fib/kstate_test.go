package fib

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// kstate builds a state.State from `ip` commands the way the kernel would
// (fib-semantics.md §3.4, §8): addresses create their local, broadcast
// and prefix routes, IPv6 devices get link-local addresses, admin down
// deletes routes and IPv6 addresses, carrier loss marks nexthops
// linkdown. It covers the vocabulary of fib-cases/cases.sh.
type kstate struct {
	t     testingTB
	s     state.State
	peers map[string]string
	next  int
}

func newKState(t testingTB) *kstate {
	k := &kstate{t: t, peers: map[string]string{}, next: 2}
	k.s.Version = state.Version
	k.s.Sysctls = map[string]string{}
	k.s.Links = []state.Link{{Index: 1, Name: "lo", Up: true, Carrier: true, Loopback: true}}
	k.addAddr("lo", "127.0.0.1/8", "host")
	k.addAddr("lo", "::1/128", "host")
	return k
}

func (k *kstate) state() *state.State {
	k.ensureDefaultRules()
	s := k.s
	s.Links = slices.Clone(k.s.Links)
	s.Addrs = slices.Clone(k.s.Addrs)
	s.Routes = slices.Clone(k.s.Routes)
	s.Rules = slices.Clone(k.s.Rules)
	return &s
}

func (k *kstate) fatalf(format string, args ...any) {
	k.t.Helper()
	k.t.Fatalf(format, args...)
}

func (k *kstate) link(name string) *state.Link {
	for i := range k.s.Links {
		if k.s.Links[i].Name == name {
			return &k.s.Links[i]
		}
	}
	return nil
}

func (k *kstate) sysctl(name, value string) {
	k.s.Sysctls[name] = value
	if strings.HasPrefix(name, "net.ipv4.conf.") && strings.HasSuffix(name, ".ignore_routes_with_linkdown") {
		return
	}
}

// veth adds a veth pair created inside the namespace: the peer gets the
// lower ifindex.
func (k *kstate) veth(name, peer string) {
	k.s.Links = append(k.s.Links, state.Link{Index: k.next, Name: peer, Kind: "veth"})
	k.s.Links = append(k.s.Links, state.Link{Index: k.next + 1, Name: name, Kind: "veth"})
	k.next += 2
	k.peers[name], k.peers[peer] = peer, name
}

func (k *kstate) carrierOf(name string) bool {
	l := k.link(name)
	if l.Loopback {
		return l.Up
	}
	p := k.link(k.peers[name])
	return l.Up && p != nil && p.Up
}

func (k *kstate) setUp(name string, up bool) {
	l := k.link(name)
	if l == nil {
		k.fatalf("no link %s", name)
	}
	if l.Up == up {
		return
	}
	l.Up = up
	if !up {
		k.devDown(name)
	}
	for _, n := range []string{name, k.peers[name]} {
		if n == "" {
			continue
		}
		k.updateCarrier(n)
	}
	if up {
		k.devUp(name)
	}
}

func (k *kstate) updateCarrier(name string) {
	l := k.link(name)
	c := k.carrierOf(name)
	had := l.Carrier
	l.Carrier = c
	if !l.Up {
		return
	}
	if had && !c {
		k.markLinkdown(name, true)
	}
	if !had && c {
		k.markLinkdown(name, false)
		k.addLinkLocal(name)
	}
}

func (k *kstate) markLinkdown(dev string, down bool) {
	for i := range k.s.Routes {
		r := &k.s.Routes[i]
		if r.Is6() && (r.Type == state.RouteLocal || r.Type == state.RouteAnycast) {
			continue
		}
		if !r.Is6() && r.Scope == state.ScopeHost {
			continue
		}
		for j := range r.Nexthops {
			nh := &r.Nexthops[j]
			if nh.Dev != dev {
				continue
			}
			if down {
				nh.Flags |= state.NexthopLinkdown
			} else {
				nh.Flags &^= state.NexthopLinkdown
			}
		}
		if len(r.Nexthops) == 1 {
			r.Flags = r.Flags&^state.NexthopLinkdown | r.Nexthops[0].Flags&state.NexthopLinkdown
		}
	}
}

// devDown: IPv4 routes through the device die (single-path ones are
// deleted; local routes stay), IPv6 addresses and routes are removed.
func (k *kstate) devDown(dev string) {
	var keep []state.Route
	for _, r := range k.s.Routes {
		if r.Is6() {
			if len(r.Nexthops) > 0 && r.Nexthops[0].Dev == dev {
				continue
			}
			keep = append(keep, r)
			continue
		}
		if r.Scope == state.ScopeHost || len(r.Nexthops) == 0 {
			keep = append(keep, r)
			continue
		}
		alive := 0
		nhs := slices.Clone(r.Nexthops)
		for j := range nhs {
			if nhs[j].Dev == dev {
				nhs[j].Flags |= state.NexthopDead | state.NexthopLinkdown
			}
			if nhs[j].Flags&state.NexthopDead == 0 {
				alive++
			}
		}
		if alive == 0 {
			continue
		}
		r.Nexthops = nhs
		keep = append(keep, r)
	}
	k.s.Routes = keep
	var addrs []state.Addr
	for _, a := range k.s.Addrs {
		if a.Dev == dev && a.Is6() {
			continue
		}
		addrs = append(addrs, a)
	}
	k.s.Addrs = addrs
}

// devUp re-creates the routes of the device's IPv4 addresses.
func (k *kstate) devUp(dev string) {
	for _, a := range k.s.Addrs {
		if a.Dev == dev && !a.Is6() {
			k.ifaRoutes(a, false)
		}
	}
}

func (k *kstate) addLinkLocal(dev string) {
	l := k.link(dev)
	if l.Loopback {
		return
	}
	ll := fmt.Sprintf("fe80::ff:fe00:%x/64", l.Index)
	for _, a := range k.s.Addrs {
		if a.Dev == dev && a.Prefix.String() == ll {
			return
		}
	}
	k.addAddr(dev, ll, "link")
	k.s.Routes = append(k.s.Routes, state.Route{Table: state.TableLocal, Type: state.RouteMulticast,
		Dst: netip.MustParsePrefix("ff00::/8"), Metric: 256, Protocol: 2,
		Nexthops: []state.Nexthop{{Dev: dev, Index: l.Index}}})
}

// addAddr adds an address in kernel list order and its routes.
func (k *kstate) addAddr(dev, pfx string, scope string, flags ...state.AddrFlags) {
	p := netip.MustParsePrefix(pfx)
	l := k.link(dev)
	a := state.Addr{Dev: dev, Index: l.Index, Prefix: p}
	for _, f := range flags {
		a.Flags |= f
	}
	switch scope {
	case "host":
		a.Scope = state.ScopeHost
	case "link":
		a.Scope = state.ScopeLink
	}
	if p.Addr().Is4() {
		if !a.Prefix.Addr().IsLoopback() && scope == "" {
			a.Scope = state.ScopeUniverse
		}
		if p.Bits() < 31 {
			a.Broadcast = u4(v4u(p.Addr()) | ^mask4(p.Bits()))
		}
		// secondary: same subnet as an existing primary
		idx := -1
		secondary := false
		for i, o := range k.s.Addrs {
			if o.Dev != dev || o.Is6() {
				continue
			}
			if o.Flags&state.AddrSecondary == 0 && o.Prefix.Bits() == p.Bits() && o.Prefix.Masked() == p.Masked() {
				secondary = true
			}
			if o.Flags&state.AddrSecondary == 0 && o.Scope >= a.Scope {
				idx = i
			}
		}
		if secondary {
			a.Flags |= state.AddrSecondary
			k.s.Addrs = append(k.s.Addrs, a)
		} else {
			k.s.Addrs = k.insertAddr(a, idx)
		}
	} else {
		// newest first among addresses of the same scope
		idx := -1
		for i, o := range k.s.Addrs {
			if o.Dev != dev || !o.Is6() {
				continue
			}
			if srcScope6(addrType6(split6(o.Prefix.Addr()))) > srcScope6(addrType6(split6(p.Addr()))) {
				idx = i
			}
		}
		if idx < 0 {
			// before the device's first IPv6 address
			for i, o := range k.s.Addrs {
				if o.Dev == dev && o.Is6() {
					idx = i - 1
					break
				}
			}
			if idx < 0 {
				k.s.Addrs = k.insertAddr(a, k.lastOfDev(dev))
			} else {
				k.s.Addrs = slices.Insert(k.s.Addrs, idx+1, a)
			}
		} else {
			k.s.Addrs = slices.Insert(k.s.Addrs, idx+1, a)
		}
	}
	k.ifaRoutes(a, true)
}

func (k *kstate) lastOfDev(dev string) int {
	last := -1
	pos := k.link(dev)
	for i, o := range k.s.Addrs {
		if o.Dev == dev {
			last = i
		}
	}
	if last >= 0 {
		return last
	}
	// keep Addrs grouped in link order
	for i, o := range k.s.Addrs {
		if k.link(o.Dev).Index < pos.Index || o.Dev == "lo" {
			last = i
		}
	}
	return last
}

func (k *kstate) insertAddr(a state.Addr, after int) []state.Addr {
	if after < 0 {
		after = k.lastOfDev(a.Dev)
	}
	return slices.Insert(k.s.Addrs, after+1, a)
}

// ifaRoutes adds the routes the kernel derives from an address.
func (k *kstate) ifaRoutes(a state.Addr, withLocal bool) {
	l := k.link(a.Dev)
	p := a.Prefix
	nh := func() []state.Nexthop { return []state.Nexthop{{Dev: a.Dev, Index: l.Index}} }
	if p.Addr().Is4() {
		src := p.Addr()
		if a.Flags&state.AddrSecondary != 0 {
			for _, o := range k.s.Addrs {
				if o.Dev == a.Dev && !o.Is6() && o.Flags&state.AddrSecondary == 0 && o.Prefix.Masked() == p.Masked() {
					src = o.Prefix.Addr()
				}
			}
		}
		if withLocal {
			k.s.Routes = append(k.s.Routes, state.Route{Table: state.TableLocal, Type: state.RouteLocal,
				Dst: netip.PrefixFrom(p.Addr(), 32), Protocol: 2, Scope: state.ScopeHost, PrefSrc: src, Nexthops: nh()})
		}
		if !l.Up || a.Flags&state.AddrSecondary != 0 {
			return
		}
		if p.Bits() < 32 {
			typ := state.RouteUnicast
			table := state.TableMain
			scope := state.ScopeLink
			if l.Loopback {
				typ, table, scope = state.RouteLocal, state.TableLocal, state.ScopeHost
			}
			k.s.Routes = append(k.s.Routes, state.Route{Table: table, Type: typ, Dst: p.Masked(), Protocol: 2,
				Scope: scope, PrefSrc: src, Nexthops: nh()})
		}
		if p.Bits() < 31 {
			k.s.Routes = append(k.s.Routes, state.Route{Table: state.TableLocal, Type: state.RouteBroadcast,
				Dst: netip.PrefixFrom(a.Broadcast, 32), Protocol: 2, Scope: state.ScopeLink, PrefSrc: src, Nexthops: nh()})
		}
		return
	}
	k.s.Routes = append(k.s.Routes, state.Route{Table: state.TableLocal, Type: state.RouteLocal,
		Dst: netip.PrefixFrom(p.Addr(), 128), Protocol: 2, Nexthops: nh()})
	if p.Bits() < 128 && a.Flags&state.AddrNoPrefixRoute == 0 {
		k.s.Routes = append(k.s.Routes, state.Route{Table: state.TableMain, Type: state.RouteUnicast,
			Dst: p.Masked(), Protocol: 2, Metric: 256, Nexthops: nh()})
	} else if l.Loopback {
		k.s.Routes = append(k.s.Routes, state.Route{Table: state.TableMain, Type: state.RouteUnicast,
			Dst: p, Protocol: 2, Metric: 256, Nexthops: nh()})
	}
}

// ip runs one iproute2 command (the words after `ip -n NS`).
func (k *kstate) ip(cmd string) {
	k.t.Helper()
	w := strings.Fields(cmd)
	v6 := false
	if len(w) > 0 && w[0] == "-6" {
		v6, w = true, w[1:]
	}
	if len(w) < 2 {
		k.fatalf("bad command %q", cmd)
	}
	var err error
	switch w[0] + " " + w[1] {
	case "link add":
		// link add NAME type veth peer name PEER
		k.veth(w[2], w[len(w)-1])
	case "link set":
		k.setUp(w[2], w[3] == "up")
	case "addr add":
		var flags []state.AddrFlags
		for _, x := range w[3:] {
			switch x {
			case "nodad":
				flags = append(flags, state.AddrNoDAD)
			}
		}
		dev := w[slices.Index(w, "dev")+1]
		if i := slices.Index(w, "preferred_lft"); i >= 0 && w[i+1] == "0" {
			flags = append(flags, state.AddrDeprecated)
		}
		k.addAddr(dev, w[2], "", flags...)
	case "route add", "route append", "route prepend", "route replace":
		err = k.routeAdd(w[1], w[2:], v6)
	case "route del":
		err = k.routeDel(w[2:], v6)
	case "rule add":
		err = k.ruleAdd(w[2:], v6)
	case "rule del":
		err = k.ruleDel(w[2:], v6)
	default:
		k.fatalf("unsupported command %q", cmd)
	}
	if err != nil {
		k.fatalf("%s: %v", cmd, err)
	}
}

func (k *kstate) connectedDev(gw netip.Addr) string {
	for _, a := range k.s.Addrs {
		if a.Flags&state.AddrSecondary != 0 {
			continue
		}
		if a.Prefix.Masked().Contains(gw) && k.link(a.Dev).Up {
			return a.Dev
		}
	}
	return ""
}

func (k *kstate) routeAdd(verb string, w []string, v6 bool) error {
	r := state.Route{Type: state.RouteUnicast, Protocol: 3}
	if t, err := state.ParseRouteType(w[0]); err == nil && w[0] != "default" {
		r.Type = t
		w = w[1:]
	}
	dst := w[0]
	w = w[1:]
	for i := 0; i+1 < len(w); i++ {
		if w[i] == "via" && strings.Contains(w[i+1], ":") {
			v6 = true // iproute2 takes the family from the gateway
		}
	}
	if dst == "default" {
		if v6 {
			dst = "::/0"
		} else {
			dst = "0.0.0.0/0"
		}
	}
	if !strings.Contains(dst, "/") {
		if strings.Contains(dst, ":") {
			dst += "/128"
		} else {
			dst += "/32"
		}
	}
	r.Dst = netip.MustParsePrefix(dst).Masked()
	v6 = r.Dst.Addr().Is6()
	if v6 {
		r.Metric = 1024
	}
	switch r.Type {
	case state.RouteLocal, state.RouteBroadcast, state.RouteAnycast, state.RouteNAT:
		r.Table = state.TableLocal
	default:
		r.Table = state.TableMain
	}
	var cur *state.Nexthop
	gwSeen := false
	for i := 0; i < len(w); i++ {
		x := w[i]
		arg := func() string { i++; return w[i] }
		switch x {
		case "from":
			r.Src = netip.MustParsePrefix(arg())
		case "tos":
			n, _ := strconv.ParseUint(strings.TrimPrefix(arg(), "0x"), 16, 8)
			r.TOS = uint8(n)
		case "via":
			g := arg()
			if g == "inet6" {
				g = arg()
			}
			if cur == nil {
				r.Nexthops = append(r.Nexthops, state.Nexthop{})
				cur = &r.Nexthops[len(r.Nexthops)-1]
			}
			cur.Gateway = netip.MustParseAddr(g)
			gwSeen = true
		case "dev":
			if cur == nil {
				r.Nexthops = append(r.Nexthops, state.Nexthop{})
				cur = &r.Nexthops[len(r.Nexthops)-1]
			}
			cur.Dev = arg()
		case "nexthop":
			r.Nexthops = append(r.Nexthops, state.Nexthop{Weight: 1})
			cur = &r.Nexthops[len(r.Nexthops)-1]
		case "weight":
			cur.Weight, _ = strconv.Atoi(arg())
		case "table":
			r.Table = tableID(arg())
		case "metric":
			m, _ := strconv.Atoi(arg())
			r.Metric = uint32(m)
		case "pref":
			switch arg() {
			case "low":
				r.Pref = 3
			case "high":
				r.Pref = 1
			}
		case "src":
			r.PrefSrc = netip.MustParseAddr(arg())
		case "onlink":
			cur.Flags |= state.NexthopOnlink
		case "proto":
			p, err := state.Protocol(0), error(nil)
			err = p.UnmarshalText([]byte(arg()))
			if err != nil {
				return err
			}
			r.Protocol = p
		case "mtu":
			m, _ := strconv.Atoi(arg())
			r.MTU = uint32(m)
		default:
			return fmt.Errorf("unknown route word %q", x)
		}
	}
	// scope (iproute2 defaults)
	switch r.Type {
	case state.RouteLocal, state.RouteNAT:
		r.Scope = state.ScopeHost
	case state.RouteBroadcast, state.RouteMulticast, state.RouteAnycast:
		r.Scope = state.ScopeLink
	case state.RouteUnicast:
		if !gwSeen {
			r.Scope = state.ScopeLink
		}
	}
	if v6 {
		r.Scope = state.ScopeUniverse
	}
	for i := range r.Nexthops {
		nh := &r.Nexthops[i]
		if nh.Dev == "" && nh.Gateway.IsValid() {
			nh.Dev = k.connectedDev(nh.Gateway)
			if nh.Dev == "" {
				return fmt.Errorf("Nexthop has invalid gateway")
			}
		}
		l := k.link(nh.Dev)
		if l == nil {
			return fmt.Errorf("no device %q", nh.Dev)
		}
		if !l.Up {
			return fmt.Errorf("Device for nexthop is not up")
		}
		nh.Index = l.Index
		if !l.Carrier && !l.Loopback {
			nh.Flags |= state.NexthopLinkdown
		}
		if len(r.Nexthops) == 1 {
			r.Flags |= nh.Flags
			nh.Weight = 0
		}
	}
	if v6 && len(r.Nexthops) == 0 {
		r.Nexthops = []state.Nexthop{{Dev: "lo", Index: 1}}
	}
	if len(r.Nexthops) > 1 {
		r.Scope = state.ScopeUniverse
	}
	// same key already present?
	for i := range k.s.Routes {
		o := &k.s.Routes[i]
		if o.Table != r.Table || o.Dst != r.Dst || o.Src != r.Src || o.TOS != r.TOS || o.Metric != r.Metric || o.Is6() != v6 {
			continue
		}
		if v6 && verb == "append" && gwSeen && len(o.Nexthops) > 0 && o.Nexthops[0].Gateway.IsValid() {
			// IPv6 ECMP: the new route becomes a sibling
			for j := range o.Nexthops {
				if o.Nexthops[j].Weight == 0 {
					o.Nexthops[j].Weight = 1
				}
			}
			nh := r.Nexthops[0]
			nh.Weight = 1
			o.Nexthops = append(o.Nexthops, nh)
			o.Flags &^= 0xff
			return nil
		}
		if v6 && verb == "append" {
			break
		}
		switch verb {
		case "add":
			return fmt.Errorf("File exists")
		case "prepend":
			k.s.Routes = slices.Insert(k.s.Routes, i, r)
			return nil
		}
	}
	k.s.Routes = append(k.s.Routes, r)
	return nil
}

func (k *kstate) routeDel(w []string, v6 bool) error {
	dst := w[0]
	if dst == "default" {
		if v6 {
			dst = "::/0"
		} else {
			dst = "0.0.0.0/0"
		}
	}
	p := netip.MustParsePrefix(dst)
	for i, r := range k.s.Routes {
		if r.Dst == p && r.Table == state.TableMain && r.Is6() == v6 {
			k.s.Routes = slices.Delete(k.s.Routes, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("No such process")
}

func (k *kstate) ruleAdd(w []string, v6 bool) error {
	fam := 4
	if v6 {
		fam = 6
	}
	r := state.NewRule(fam)
	r.Protocol = 3
	hasAction := false
	for i := 0; i < len(w); i++ {
		x := w[i]
		arg := func() string { i++; return w[i] }
		switch x {
		case "pref", "priority":
			n, _ := strconv.Atoi(arg())
			r.Priority = uint32(n)
		case "not":
			r.Invert = true
		case "from":
			r.Src = netip.MustParsePrefix(withLen(arg()))
		case "to":
			r.Dst = netip.MustParsePrefix(withLen(arg()))
		case "tos":
			n, _ := strconv.ParseUint(strings.TrimPrefix(arg(), "0x"), 16, 8)
			r.TOS = uint8(n)
		case "fwmark":
			v := arg()
			m := "0xffffffff"
			if j := strings.IndexByte(v, '/'); j >= 0 {
				v, m = v[:j], v[j+1:]
			}
			a, _ := strconv.ParseUint(v, 0, 32)
			b, _ := strconv.ParseUint(m, 0, 32)
			r.Mark, r.Mask = uint32(a), uint32(b)
		case "iif":
			r.IIF = arg()
			r.IIFDetached = k.link(r.IIF) == nil
		case "oif":
			r.OIF = arg()
			r.OIFDetached = k.link(r.OIF) == nil
		case "ipproto":
			p, err := parseProto(arg())
			if err != nil {
				return err
			}
			r.IPProto = p
		case "sport", "dport":
			a, b, _ := strings.Cut(arg(), "-")
			lo, _ := strconv.Atoi(a)
			hi := lo
			if b != "" {
				hi, _ = strconv.Atoi(b)
			}
			pr := &state.PortRange{Start: uint16(lo), End: uint16(hi)}
			if x == "sport" {
				r.SPort = pr
			} else {
				r.DPort = pr
			}
		case "uidrange":
			a, b, _ := strings.Cut(arg(), "-")
			lo, _ := strconv.ParseUint(a, 10, 32)
			hi, _ := strconv.ParseUint(b, 10, 32)
			r.UID = &state.UIDRange{Start: uint32(lo), End: uint32(hi)}
		case "lookup", "table":
			r.Table = tableID(arg())
			r.Action, hasAction = state.ActionLookup, true
		case "goto":
			n, _ := strconv.Atoi(arg())
			r.Action, r.Goto, hasAction = state.ActionGoto, uint32(n), true
		case "nop":
			r.Action, hasAction = state.ActionNop, true
		case "unreachable":
			r.Action, hasAction = state.ActionUnreachable, true
		case "prohibit":
			r.Action, hasAction = state.ActionProhibit, true
		case "blackhole":
			r.Action, hasAction = state.ActionBlackhole, true
		case "suppress_prefixlength":
			r.SuppressPrefixLen, _ = strconv.Atoi(arg())
		case "suppress_ifgroup":
			r.SuppressIfGroup, _ = strconv.Atoi(arg())
		default:
			return fmt.Errorf("unknown rule word %q", x)
		}
	}
	if !hasAction {
		r.Action, r.Table = state.ActionLookup, state.TableMain
	}
	if r.Action == state.ActionGoto {
		r.Unresolved = true
		for _, o := range k.s.Rules {
			if o.Family == fam && o.Priority == r.Goto {
				r.Unresolved = false
			}
		}
	}
	k.ensureDefaultRules()
	// insert after the last rule of the family with pref <= r.pref
	idx := len(k.s.Rules)
	for i, o := range k.s.Rules {
		if o.Family == fam && o.Priority > r.Priority {
			idx = i
			break
		}
	}
	k.s.Rules = slices.Insert(k.s.Rules, idx, r)
	for i := range k.s.Rules {
		o := &k.s.Rules[i]
		if o.Family == fam && o.Action == state.ActionGoto && o.Goto == r.Priority {
			o.Unresolved = false
		}
	}
	if fam == 4 {
		t := true
		k.s.Hidden.RulesModified = &t
	}
	return nil
}

func (k *kstate) ruleDel(w []string, v6 bool) error {
	fam := 4
	if v6 {
		fam = 6
	}
	k.ensureDefaultRules()
	if len(w) != 2 || w[0] != "pref" {
		return fmt.Errorf("rule del: only 'pref N' is supported")
	}
	n, _ := strconv.Atoi(w[1])
	for i, o := range k.s.Rules {
		if o.Family == fam && o.Priority == uint32(n) {
			k.s.Rules = slices.Delete(k.s.Rules, i, i+1)
			break
		}
	}
	if fam == 4 {
		t := true
		k.s.Hidden.RulesModified = &t
	}
	return nil
}

func (k *kstate) ensureDefaultRules() {
	if len(k.s.Rules) > 0 {
		return
	}
	for _, fam := range []int{4, 6} {
		for _, r := range defaultRules(fam) {
			r.Protocol = 2
			k.s.Rules = append(k.s.Rules, r)
		}
	}
	f := false
	if k.s.Hidden.RulesModified == nil {
		k.s.Hidden.RulesModified = &f
	}
}

func withLen(s string) string {
	if strings.Contains(s, "/") {
		return s
	}
	if strings.Contains(s, ":") {
		return s + "/128"
	}
	return s + "/32"
}

func tableID(v string) uint32 {
	n, _ := state.ParseTable(v)
	return n
}
