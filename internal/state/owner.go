package state

// Ownership. tunroute changes only objects that carry its mark:
//
//   - routes: rtm_protocol == Proto (shown by iproute2 as "proto 116"),
//   - rules:  FRA_PROTOCOL == Proto,
//   - addresses: IFA_PROTO == Proto (kernel 6.3 and later),
//   - links: an ifalias starting with LinkAliasPrefix.
//
// 116 is not assigned in the kernel's rtnetlink.h nor in iproute2's
// rt_protos, and no common routing daemon uses it.
const Proto Protocol = 116

// ProtoKernel is the protocol of the routes the kernel makes itself
// (connected and local routes of an address).
const ProtoKernel Protocol = 2

// ProtoName is the name tunroute gives its protocol number in output.
const ProtoName = "tunroute"

// LinkAliasPrefix marks a link as created by tunroute.
const LinkAliasPrefix = "tunroute:"

// Reserved tables that tunroute never allocates: unspec, default, main,
// local, and the tables used by wg-quick, Tailscale and strongSwan.
var ReservedTables = map[uint32]string{
	0:     "unspec",
	253:   "default",
	254:   "main",
	255:   "local",
	51820: "wg-quick",
	52:    "Tailscale",
	220:   "strongSwan",
}

// Well-known table numbers.
const (
	TableDefault uint32 = 253
	TableMain    uint32 = 254
	TableLocal   uint32 = 255
)

// Owned reports whether tunroute owns the route.
func (r *Route) Owned() bool { return r.Protocol == Proto }

// Owned reports whether tunroute owns the rule.
func (r *Rule) Owned() bool { return r.Protocol == Proto }

// Owned reports whether tunroute owns the address.
func (a *Addr) Owned() bool { return a.Proto == Proto }

// Owned reports whether tunroute created the link.
func (l *Link) Owned() bool {
	return len(l.Alias) >= len(LinkAliasPrefix) && l.Alias[:len(LinkAliasPrefix)] == LinkAliasPrefix
}
