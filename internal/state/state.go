package state

import "net/netip"

// Version of the JSON form. Bump it when a field changes meaning.
const Version = 1

// State is the routing state of one network namespace.
type State struct {
	Version int `json:"version"`
	// Namespace is the name under /run/netns, or "" for the initial one.
	Namespace string `json:"namespace"`
	// Links in the namespace's device-list order (lo first).
	Links []Link `json:"links"`
	// Addrs grouped by link in Links order, each group in kernel list order.
	Addrs []Addr `json:"addrs"`
	// Routes of all tables and both families, in dump order.
	Routes []Route `json:"routes"`
	// RouteSets hold large groups of routes that differ only in their
	// destination (a country list, a provider's prefixes), compactly; a
	// desired state uses them for routes loaded from files.
	RouteSets []RouteSet `json:"route_sets,omitempty"`
	// Rules of both families, each family in list order.
	Rules []Rule `json:"rules"`
	// NexthopObjects are the namespace's nexthop objects (`ip nexthop`)
	// other than those tunroute makes for its route sets (which Observe
	// reads back as plain routes), in id order.
	NexthopObjects []NexthopObject `json:"nexthop_objects,omitempty"`
	// Sysctls that routing depends on, by full dotted name
	// ("net.ipv4.conf.all.rp_filter").
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Firewall is tunroute's own nftables table; nil when absent.
	Firewall *Firewall `json:"firewall,omitempty"`
	// AddrLabels is the IPv6 address label table (`ip addrlabel`).
	AddrLabels []AddrLabel `json:"addrlabels,omitempty"`
	// Hidden records facts about state a dump cannot show (§11 of
	// fib-semantics.md); nil fields mean "unknown".
	Hidden Hidden `json:"hidden"`
}

// CloneLists returns a copy of s whose links, addresses, routes and
// rules can be added, replaced and removed without changing s (what the
// elements point to is still shared).
func (s *State) CloneLists() *State {
	c := *s
	c.Links = append([]Link(nil), s.Links...)
	c.Addrs = append([]Addr(nil), s.Addrs...)
	c.Routes = append([]Route(nil), s.Routes...)
	c.Rules = append([]Rule(nil), s.Rules...)
	return &c
}

// Hidden holds what the kernel does not expose in dumps.
type Hidden struct {
	// RulesModified: whether IPv4 rules were ever changed in this
	// namespace (the kernel then stops merging the local and main tables).
	// Observed state sets it true when any non-default IPv4 rule exists.
	RulesModified *bool `json:"rules_modified,omitempty"`
	// MultipathHashSeed is the effective hash seed when known.
	MultipathHashSeed *uint32 `json:"multipath_hash_seed,omitempty"`
}

// Link is a network device.
type Link struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Kind is IFLA_INFO_KIND ("veth", "tun", "bridge", ...); "" for lo and
	// devices without one.
	Kind string `json:"kind,omitempty"`
	// Up is IFF_UP (administrative state).
	Up bool `json:"up"`
	// Carrier is IFF_LOWER_UP.
	Carrier      bool   `json:"carrier"`
	Loopback     bool   `json:"loopback,omitempty"`
	NoARP        bool   `json:"noarp,omitempty"`
	PointToPoint bool   `json:"pointopoint,omitempty"`
	OperState    string `json:"operstate,omitempty"`
	MTU          int    `json:"mtu,omitempty"`
	Group        uint32 `json:"group,omitempty"`
	// Master is the ifindex of the master device (bridge, VRF), 0 if none.
	Master int `json:"master,omitempty"`
	// L3MDev is set on an L3 master device (VRF).
	L3MDev bool `json:"l3mdev,omitempty"`
	// Alias is IFLA_IFALIAS; tunroute's own links carry LinkAliasPrefix.
	Alias string `json:"alias,omitempty"`
	// Peer is the other end's name for a veth created by tunroute, and
	// PeerNamespace the namespace it lives in ("" = same namespace).
	Peer          string `json:"peer,omitempty"`
	PeerNamespace string `json:"peer_namespace,omitempty"`
	HardwareAddr  string `json:"address,omitempty"`
	// VXLAN describes a vxlan device.
	VXLAN *VXLAN `json:"vxlan,omitempty"`
	// Tunnel describes an xfrm, vti, vti6, gre or ip6gre device.
	Tunnel *Tunnel `json:"tunnel,omitempty"`
	// WireGuard describes a WireGuard device (kernel or userspace).
	WireGuard *WireGuard `json:"wireguard,omitempty"`
	// Userspace marks, in a desired state, a WireGuard device that a
	// userspace implementation (wireguard-go over TUN) creates: tunroute
	// configures it but neither creates nor deletes it.
	Userspace bool `json:"-"`
	// CreatedByPeer marks, in a desired state, the far end of a veth pair
	// that the other namespace's op creates together with its own end.
	CreatedByPeer bool `json:"-"`
}

// Addr is an interface address.
type Addr struct {
	// Dev names the link; Index is its ifindex (0 in a desired state
	// compiled before the link exists).
	Dev   string `json:"dev"`
	Index int    `json:"index,omitempty"`
	// Prefix is IFA_LOCAL with the prefix length.
	Prefix netip.Prefix `json:"prefix"`
	// Peer is IFA_ADDRESS for point-to-point addresses when it differs
	// from the local address.
	Peer      netip.Prefix `json:"peer,omitzero"`
	Broadcast netip.Addr   `json:"broadcast,omitzero"`
	Scope     Scope        `json:"scope"`
	Flags     AddrFlags    `json:"flags"`
	Label     string       `json:"label,omitempty"`
	// Proto is IFA_PROTO; Proto == state.Proto marks tunroute's own.
	Proto Protocol `json:"proto,omitempty"`
	// Lifetimes in seconds; 0xffffffff is forever. Omitted when forever.
	ValidLft     uint32 `json:"valid_lft,omitempty"`
	PreferredLft uint32 `json:"preferred_lft,omitempty"`
}

// Forever is the lifetime value meaning "no expiry".
const Forever = 0xffffffff

// Is6 reports whether the address is IPv6.
func (a *Addr) Is6() bool { return a.Prefix.Addr().Is6() }

// Route is one FIB entry.
type Route struct {
	Table uint32    `json:"table"`
	Type  RouteType `json:"type"`
	// Dst is the destination prefix; both families use it (0.0.0.0/0 or
	// ::/0 for default).
	Dst netip.Prefix `json:"dst"`
	// Src is the IPv6 source prefix of a source-specific route (subtrees).
	Src      netip.Prefix `json:"src,omitzero"`
	TOS      uint8        `json:"tos,omitempty"`
	Metric   uint32       `json:"metric,omitempty"`
	Protocol Protocol     `json:"protocol"`
	Scope    Scope        `json:"scope"`
	PrefSrc  netip.Addr   `json:"prefsrc,omitzero"`
	// Flags are rtm_flags (for a single-path route the nexthop flags
	// live here in the kernel; see Nexthops for the per-path copy).
	Flags NexthopFlags `json:"flags"`
	// Nexthops: none for blackhole-like types, one for a plain route, more
	// for multipath.
	Nexthops []Nexthop `json:"nexthops,omitempty"`
	// Pref is the IPv6 router preference (RTA_PREF): 0 medium, 1 high, 3 low.
	Pref uint8 `json:"pref,omitempty"`
	// Expires is the IPv6 remaining lifetime in seconds, 0 if none.
	Expires uint32 `json:"expires,omitempty"`
	// NHID is the nexthop object id, 0 if none.
	NHID uint32 `json:"nhid,omitempty"`
	// TakeBack (desired routes only; not part of Equal): a route another
	// put in place under this route's key is replaced by this one instead
	// of refusing the plan (settings.take_back_routes: TunnelVision).
	TakeBack bool `json:"take_back,omitempty"`
	// NHGroup says what kind of object NHID is when it is a group
	// (Nexthops then lists its members): the kernel balances a
	// resilient group by a bucket table the route does not show.
	NHGroup NHGroupKind `json:"nhgroup,omitempty"`
	MTU     uint32      `json:"mtu,omitempty"`
}

// Is6 reports whether the route is IPv6.
func (r *Route) Is6() bool { return r.Dst.Addr().Is6() }

// Nexthop is one path of a route.
type Nexthop struct {
	Gateway netip.Addr   `json:"gateway,omitzero"`
	Dev     string       `json:"dev,omitempty"`
	Index   int          `json:"index,omitempty"`
	Weight  int          `json:"weight,omitempty"` // 1..256; 0 means 1
	Flags   NexthopFlags `json:"flags"`
	// Member holds what a member of an IPv6 multipath route keeps for
	// itself; nil: the route's own PrefSrc and Pref.
	Member *Member `json:"member,omitempty"`
}

// Member is what one member of an IPv6 multipath route keeps for itself.
// The kernel stores each member as a route of its own, with its own
// preferred source, router preference and metrics (mtu), but a dump shows
// the first member's for all of them; Observe asks the kernel for the
// others.
type Member struct {
	PrefSrc netip.Addr `json:"prefsrc,omitzero"`
	Pref    uint8      `json:"pref,omitempty"`
	MTU     uint32     `json:"mtu,omitempty"`
	// Unknown: the snapshot could not learn them (no lookup reaches
	// this member); PrefSrc and Pref are then the route's.
	Unknown bool `json:"unknown,omitempty"`
}

// NexthopObject is a nexthop object: a gateway and/or device, a
// blackhole, or a group of other objects.
type NexthopObject struct {
	ID uint32 `json:"id"`
	// Family is 4 or 6 (0 for a group).
	Family    int          `json:"family,omitempty"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	Dev       string       `json:"dev,omitempty"`
	Blackhole bool         `json:"blackhole,omitempty"`
	Group     []GroupEntry `json:"group,omitempty"`
	// GroupKind, for a group; a resilient one has Resilient too.
	GroupKind NHGroupKind      `json:"group_kind,omitempty"`
	Resilient *ResilientParams `json:"resilient,omitempty"`
	Scope     Scope            `json:"scope"`
	Protocol  Protocol         `json:"protocol"`
	Flags     NexthopFlags     `json:"flags"`
}

// GroupEntry is one member of a nexthop group.
type GroupEntry struct {
	ID     uint32 `json:"id"`
	Weight int    `json:"weight,omitempty"` // 1..65536; 0 means 1
}

// ResilientParams are a resilient group's parameters, as iproute2
// prints them (timers in seconds).
type ResilientParams struct {
	Buckets         uint16 `json:"buckets"`
	IdleTimer       uint32 `json:"idle_timer"`
	UnbalancedTimer uint32 `json:"unbalanced_timer"`
	UnbalancedTime  uint64 `json:"unbalanced_time"`
}

// NHGroupKind is the kind of a nexthop group object.
type NHGroupKind uint8

const (
	NHGroupNone      NHGroupKind = 0
	NHGroupMpath     NHGroupKind = 1 // hash-threshold
	NHGroupResilient NHGroupKind = 2
)

var nhGroupNames = nameTable{1: "mpath", 2: "resilient"}

func (k NHGroupKind) String() string                { return nhGroupNames.name(uint32(k)) }
func (k NHGroupKind) MarshalText() ([]byte, error)  { return []byte(k.String()), nil }
func (k *NHGroupKind) UnmarshalText(b []byte) error { return parseInto(nhGroupNames, b, 255, k) }

// Rule is a policy routing rule.
type Rule struct {
	// Family is 4 or 6.
	Family   int    `json:"family"`
	Priority uint32 `json:"priority"`
	Invert   bool   `json:"not,omitempty"`
	// Src and Dst are the from/to selectors; the zero Prefix means "all".
	Src netip.Prefix `json:"from,omitzero"`
	Dst netip.Prefix `json:"to,omitzero"`
	IIF string       `json:"iif,omitempty"`
	OIF string       `json:"oif,omitempty"`
	// IIFDetached/OIFDetached: the named device does not exist now.
	IIFDetached bool `json:"iif_detached,omitempty"`
	OIFDetached bool `json:"oif_detached,omitempty"`
	// Mark/Mask: fwmark selector; Mask 0 with Mark 0 means none. When a
	// mark is given without a mask the kernel uses 0xffffffff.
	Mark    uint32     `json:"fwmark,omitempty"`
	Mask    uint32     `json:"fwmask,omitempty"`
	TOS     uint8      `json:"tos,omitempty"`
	IPProto uint8      `json:"ipproto,omitempty"`
	SPort   *PortRange `json:"sport,omitempty"`
	DPort   *PortRange `json:"dport,omitempty"`
	UID     *UIDRange  `json:"uidrange,omitempty"`
	L3MDev  bool       `json:"l3mdev,omitempty"`
	TunID   uint64     `json:"tun_id,omitempty"`
	// Action is what the rule does when it matches.
	Action RuleAction `json:"action"`
	// Table for Action == lookup.
	Table uint32 `json:"table,omitempty"`
	// Goto is the target priority for Action == goto; Unresolved is set
	// when no rule with that priority exists.
	Goto       uint32 `json:"goto,omitempty"`
	Unresolved bool   `json:"unresolved,omitempty"`
	// SuppressPrefixLen and SuppressIfGroup are -1 when unset.
	SuppressPrefixLen int      `json:"suppress_prefixlength"`
	SuppressIfGroup   int      `json:"suppress_ifgroup"`
	Realms            uint32   `json:"realms,omitempty"`
	Protocol          Protocol `json:"protocol"`
}

// PortRange is an inclusive port range.
type PortRange struct {
	Start uint16 `json:"start"`
	End   uint16 `json:"end"`
}

// PortIn reports whether p is in one of the ranges.
func PortIn(ranges []PortRange, p uint16) bool {
	for _, r := range ranges {
		if p >= r.Start && p <= r.End {
			return true
		}
	}
	return false
}

// AddrIn reports whether a is in one of the prefixes.
func AddrIn(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// UIDRange is an inclusive uid range.
type UIDRange struct {
	Start uint32 `json:"start"`
	End   uint32 `json:"end"`
}

// RuleAction is the FR_ACT_* of a rule.
type RuleAction uint8

const (
	ActionLookup      RuleAction = 1
	ActionGoto        RuleAction = 2
	ActionNop         RuleAction = 3
	ActionBlackhole   RuleAction = 6
	ActionUnreachable RuleAction = 7
	ActionProhibit    RuleAction = 8
)

var ruleActionNames = nameTable{1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}

func (a RuleAction) String() string                { return ruleActionNames.name(uint32(a)) }
func (a RuleAction) MarshalText() ([]byte, error)  { return []byte(a.String()), nil }
func (a *RuleAction) UnmarshalText(b []byte) error { return parseInto(ruleActionNames, b, 255, a) }

// NewRule returns a rule with the "unset" values the kernel uses.
func NewRule(family int) Rule {
	return Rule{Family: family, Action: ActionLookup, SuppressPrefixLen: -1, SuppressIfGroup: -1}
}

// AddrLabel is one entry of the IPv6 address label table.
type AddrLabel struct {
	Prefix netip.Prefix `json:"prefix"`
	Label  uint32       `json:"label"`
	Dev    string       `json:"dev,omitempty"`
}

// RouteSet is many routes that are the same but for their destination:
// Template with each of Dsts as Dst. It is how a million routes fit in
// memory: 32 bytes a route instead of a Route each.
type RouteSet struct {
	Template Route          `json:"template"`
	Dsts     []netip.Prefix `json:"dsts"`
}

// Route returns the set's route to dst.
func (s *RouteSet) Route(dst netip.Prefix) Route {
	r := s.Template
	r.Dst = dst
	return r
}

// VXLAN is a vxlan device's configuration. Its underlay socket lives in
// the namespace the device is created from, which may differ from the one
// it sits in: a domain's vxlan rides a tunnel of the host (several
// routing domains over one tunnel).
type VXLAN struct {
	VNI    uint32     `json:"vni"`
	Local  netip.Addr `json:"local,omitzero"`
	Remote netip.Addr `json:"remote,omitzero"`
	// Dev is the underlay device, in UnderlayNamespace: "" is the
	// namespace the device is in, HostNamespace the initial one, anything
	// else a name under /run/netns.
	Dev               string `json:"dev,omitempty"`
	Port              uint16 `json:"port,omitempty"`
	UnderlayNamespace string `json:"underlay_namespace,omitempty"`
}

// HostNamespace names the initial network namespace where a field needs
// to tell it apart from "this namespace".
const HostNamespace = "@host"
