package kernel

// The oracle: iproute2's JSON output (`ip -j -d ...`) parsed into the
// state model, so tests can compare Observe and Execute with an
// independent reader of the kernel.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

type ipLink struct {
	Index     int      `json:"ifindex"`
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	MTU       int      `json:"mtu"`
	OperState string   `json:"operstate"`
	Group     string   `json:"group"`
	Master    string   `json:"master"`
	Alias     string   `json:"ifalias"`
	Link      string   `json:"link"`
	Address   string   `json:"address"`
	LinkInfo  struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
	AddrInfo []map[string]any `json:"addr_info"`
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// oracleLinks returns the links as `ip -d link show` sees them.
func oracleLinks(t *testing.T, ns string) []state.Link {
	var raw []ipLink
	ipJSON(t, ns, &raw, "-d", "link", "show")
	byName := map[string]int{}
	for _, l := range raw {
		byName[l.Name] = l.Index
	}
	var out []state.Link
	for _, l := range raw {
		s := state.Link{
			Index: l.Index, Name: l.Name, Kind: l.LinkInfo.Kind,
			Up: has(l.Flags, "UP"), Carrier: has(l.Flags, "LOWER_UP"), Loopback: has(l.Flags, "LOOPBACK"),
			NoARP: has(l.Flags, "NOARP"), PointToPoint: has(l.Flags, "POINTOPOINT"),
			OperState: l.OperState, MTU: l.MTU, Alias: l.Alias, HardwareAddr: l.Address,
		}
		if l.Group != "default" {
			g, err := strconv.ParseUint(l.Group, 0, 32)
			if err != nil {
				t.Fatalf("link %s: group %q", l.Name, l.Group)
			}
			s.Group = uint32(g)
		}
		if l.Master != "" {
			s.Master = byName[l.Master]
		}
		if s.Kind == "veth" {
			s.Peer = l.Link
		}
		out = append(out, s)
	}
	return out
}

var ipAddrFlags = map[string]state.AddrFlags{
	"secondary": state.AddrSecondary, "temporary": state.AddrSecondary, "nodad": state.AddrNoDAD,
	"optimistic": state.AddrOptimistic, "dadfailed": state.AddrDADFailed, "home": state.AddrHomeAddress,
	"deprecated": state.AddrDeprecated, "tentative": state.AddrTentative, "mngtmpaddr": state.AddrManageTemp,
	"noprefixroute": state.AddrNoPrefixRoute, "autojoin": state.AddrMcAutoJoin,
	"stable-privacy": state.AddrStablePrivacy,
}

// oracleAddrs returns the addresses as `ip -d addr show` sees them, per
// link in link order.
func oracleAddrs(t *testing.T, ns string) []state.Addr {
	var raw []ipLink
	ipJSON(t, ns, &raw, "-d", "addr", "show")
	var out []state.Addr
	for _, l := range raw {
		for _, ai := range l.AddrInfo {
			str := func(k string) string { s, _ := ai[k].(string); return s }
			num := func(k string) uint32 { f, _ := ai[k].(float64); return uint32(f) }
			plen := int(num("prefixlen"))
			a := state.Addr{Dev: l.Name, Index: l.Index, Label: str("label"), Flags: state.AddrPermanent}
			a.Prefix = netip.PrefixFrom(netip.MustParseAddr(str("local")), plen)
			if p := str("address"); p != "" {
				a.Peer = netip.PrefixFrom(netip.MustParseAddr(p), plen)
			}
			if b := str("broadcast"); b != "" {
				a.Broadcast = netip.MustParseAddr(b)
			}
			sc, err := state.ParseScope(str("scope"))
			if err != nil {
				t.Fatalf("addr scope %q", str("scope"))
			}
			a.Scope = sc
			for k, v := range ai {
				if v != true {
					continue
				}
				if k == "dynamic" {
					a.Flags &^= state.AddrPermanent
				} else if f, ok := ipAddrFlags[k]; ok {
					a.Flags |= f
				} else {
					t.Fatalf("unknown address flag %q", k)
				}
			}
			a.ValidLft = lifetime(num("valid_life_time"))
			a.PreferredLft = lifetime(num("preferred_life_time"))
			out = append(out, a)
		}
	}
	return out
}

// parseTable reads a table as ip prints it: a number, or the name
// state.TableName gives a reserved one.
func parseTable(t *testing.T, s string) uint32 {
	id, err := state.ParseTable(s)
	if err != nil {
		t.Fatalf("table %q", s)
	}
	return id
}

func parseProto(t *testing.T, s string) state.Protocol {
	var p state.Protocol
	if err := p.UnmarshalText([]byte(s)); err != nil {
		t.Fatalf("protocol %q", s)
	}
	return p
}

func parseHex(t *testing.T, s string) uint32 {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		t.Fatalf("number %q", s)
	}
	return uint32(v)
}

// parseDst reads a prefix as ip prints it: "default", a bare host address,
// or address/len.
func parseDst(t *testing.T, s string, v6 bool) netip.Prefix {
	if s == "default" {
		if v6 {
			return netip.MustParsePrefix("::/0")
		}
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	if strings.Contains(s, "/") {
		return netip.MustParsePrefix(s)
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func nexthopFlags(t *testing.T, names []string) state.NexthopFlags {
	var known []string
	for _, n := range names {
		if !strings.HasPrefix(n, "rt_") && n != "notify" {
			known = append(known, n)
		}
	}
	b, _ := json.Marshal(append([]string{}, known...))
	var f state.NexthopFlags
	if err := f.UnmarshalJSON(b); err != nil {
		t.Fatalf("route flags %v: %v", names, err)
	}
	return f
}

type ipNexthop struct {
	Gateway string   `json:"gateway"`
	Via     *ipVia   `json:"via"`
	Dev     string   `json:"dev"`
	Weight  int      `json:"weight"`
	Flags   []string `json:"flags"`
}

type ipVia struct {
	Family string `json:"family"`
	Host   string `json:"host"`
}

type ipRoute struct {
	ipNexthop
	Type     string           `json:"type"`
	Dst      string           `json:"dst"`
	From     string           `json:"from"`
	TOS      string           `json:"tos"`
	Table    string           `json:"table"`
	Protocol string           `json:"protocol"`
	Scope    string           `json:"scope"`
	Metric   uint32           `json:"metric"`
	PrefSrc  string           `json:"prefsrc"`
	Pref     string           `json:"pref"`
	Expires  uint32           `json:"expires"`
	NHID     uint32           `json:"nhid"`
	Metrics  []map[string]any `json:"metrics"`
	Nexthops []ipNexthop      `json:"nexthops"`
}

func (n *ipNexthop) gateway() netip.Addr {
	switch {
	case n.Gateway != "":
		return netip.MustParseAddr(n.Gateway)
	case n.Via != nil:
		return netip.MustParseAddr(n.Via.Host)
	}
	return netip.Addr{}
}

// oracleRoutes returns the routes of one family as
// `ip -4|-6 -d route show table all` sees them.
func oracleRoutes(t *testing.T, ns string, fam int, dev map[string]int) []state.Route {
	var raw []ipRoute
	ipJSON(t, ns, &raw, fmt.Sprintf("-%d", fam), "-d", "route", "show", "table", "all")
	var out []state.Route
	for _, x := range raw {
		r := state.Route{Table: parseTable(t, x.Table), Protocol: parseProto(t, x.Protocol),
			Metric: x.Metric, Expires: x.Expires, NHID: x.NHID}
		var err error
		if r.Type, err = state.ParseRouteType(x.Type); err != nil {
			t.Fatal(err)
		}
		if r.Scope, err = state.ParseScope(x.Scope); err != nil {
			t.Fatal(err)
		}
		r.Dst = parseDst(t, x.Dst, fam == 6)
		if x.From != "" {
			r.Src = parseDst(t, x.From, true)
		}
		if x.TOS != "" {
			r.TOS = uint8(parseHex(t, x.TOS))
		}
		if x.PrefSrc != "" {
			r.PrefSrc = netip.MustParseAddr(x.PrefSrc)
		}
		switch x.Pref {
		case "high":
			r.Pref = 1
		case "low":
			r.Pref = 3
		}
		for _, m := range x.Metrics {
			if v, ok := m["mtu"].(float64); ok {
				r.MTU = uint32(v)
			}
		}
		r.Flags = nexthopFlags(t, x.Flags)
		if x.Dev != "" || x.gateway().IsValid() {
			r.Nexthops = []state.Nexthop{{Gateway: x.gateway(), Dev: x.Dev, Index: dev[x.Dev], Flags: r.Flags}}
		}
		for _, nh := range x.Nexthops {
			r.Nexthops = append(r.Nexthops, state.Nexthop{Gateway: nh.gateway(), Dev: nh.Dev, Index: dev[nh.Dev],
				Weight: nh.Weight, Flags: nexthopFlags(t, nh.Flags)})
		}
		out = append(out, r)
	}
	return out
}

var ipProtoNumbers = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "sctp": 132}

// oracleRules returns the rules of one family as `ip -d rule show` sees them.
func oracleRules(t *testing.T, ns string, fam int) []state.Rule {
	var raw []map[string]any
	ipJSON(t, ns, &raw, fmt.Sprintf("-%d", fam), "-d", "rule", "show")
	var out []state.Rule
	for _, x := range raw {
		str := func(k string) string { s, _ := x[k].(string); return s }
		num := func(k string) uint32 { f, _ := x[k].(float64); return uint32(f) }
		is := func(k string) bool { _, ok := x[k]; return ok }
		r := state.NewRule(fam)
		r.Priority = num("priority")
		r.Invert = is("not")
		prefix := func(addrKey, lenKey string) netip.Prefix {
			s := str(addrKey)
			if s == "" || s == "all" {
				return netip.Prefix{}
			}
			a := netip.MustParseAddr(s)
			bits := a.BitLen()
			if is(lenKey) {
				bits = int(num(lenKey))
			}
			return netip.PrefixFrom(a, bits)
		}
		r.Src = prefix("src", "srclen")
		r.Dst = prefix("dst", "dstlen")
		if is("tos") {
			r.TOS = uint8(parseHex(t, str("tos")))
		}
		if is("fwmark") {
			r.Mark, r.Mask = parseHex(t, str("fwmark")), 0xffffffff
			if is("fwmask") {
				r.Mask = parseHex(t, str("fwmask"))
			}
		}
		r.IIF, r.IIFDetached = str("iif"), is("iif_detached")
		r.OIF, r.OIFDetached = str("oif"), is("oif_detached")
		r.L3MDev = is("l3mdev")
		if is("uid_start") {
			r.UID = &state.UIDRange{Start: num("uid_start"), End: num("uid_end")}
		}
		if is("tun_id") {
			r.TunID = uint64(x["tun_id"].(float64))
		}
		if is("ipproto") {
			p, ok := ipProtoNumbers[str("ipproto")]
			if !ok {
				t.Fatalf("ipproto %q", str("ipproto"))
			}
			r.IPProto = p
		}
		ports := func(word string) *state.PortRange {
			if is(word) {
				p := uint16(num(word))
				return &state.PortRange{Start: p, End: p}
			}
			if is(word + "_start") {
				return &state.PortRange{Start: uint16(num(word + "_start")), End: uint16(num(word + "_end"))}
			}
			return nil
		}
		r.SPort, r.DPort = ports("sport"), ports("dport")
		if is("table") {
			r.Table = parseTable(t, str("table"))
		}
		switch {
		case is("goto"):
			r.Action, r.Goto = state.ActionGoto, num("goto")
			r.Unresolved = is("unresolved")
		case is("nop"):
			r.Action = state.ActionNop
		case is("action"):
			a := str("action")
			if err := r.Action.UnmarshalText([]byte(a)); err != nil {
				t.Fatalf("rule action %q", a)
			}
		}
		if is("suppress_prefixlen") {
			r.SuppressPrefixLen = int(num("suppress_prefixlen"))
		}
		if is("suppress_ifgroup") { // a group name or number, as a string
			r.SuppressIfGroup = int(parseHex(t, str("suppress_ifgroup")))
		}
		if is("flow_to") {
			r.Realms |= parseHex(t, str("flow_to"))
		}
		if is("flow_from") {
			r.Realms |= parseHex(t, str("flow_from")) << 16
		}
		r.Protocol = parseProto(t, str("protocol"))
		out = append(out, r)
	}
	return out
}
