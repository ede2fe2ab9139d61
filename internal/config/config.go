// Package config loads and validates tunroute's YAML config. Every error
// names the file, line, column and field; nothing here touches the system.
package config

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
)

// DefaultPath is where tunroute looks for its config.
const DefaultPath = "/etc/tunroute/tunroute.yaml"

// Defaults for automatic numbering.
const (
	DefaultTableBase     = 1000
	DefaultPriorityBase  = 5000
	DefaultLocalPriority = 500
	// DefaultSelectPriorityBase puts selector rules before the
	// identities' rules.
	DefaultSelectPriorityBase = 4000
	// DefaultMarkMask is the part of the firewall mark tunroute uses, so
	// its marks coexist with other tools' (wg-quick uses 0xca6c, Tailscale
	// 0x00ff0000... choose another range with settings.mark_mask if they
	// clash).
	DefaultMarkMask = 0x0f000000
)

// Config is a loaded, syntactically valid config. Facts that depend on the
// live system (device addresses, discovered gateways) are resolved by
// internal/compile.
type Config struct {
	File string
	// TableBase is the first table number tunroute allocates for an
	// identity or local section without an explicit table.
	TableBase uint32
	// PriorityBase is the first rule priority for identities.
	PriorityBase uint32
	// Tables are names the config gives to table numbers, on top of
	// iproute2's rt_tables.
	Tables map[string]uint32
	// SelectPriorityBase is the rule priority of the first selector.
	SelectPriorityBase uint32
	// MarkMask is the part of the packet mark tunroute's selectors use.
	MarkMask uint32
	// TakeBackRoutes: a route another tool put under the key of one of
	// tunroute's routes (a DHCP client replacing a /1 of the redirect)
	// is taken back instead of refusing the apply.
	TakeBackRoutes bool
	// MultipathHash is what the kernel hashes to spread flows over a
	// balance group's paths: MultipathL4 (addresses and ports, the
	// default) or MultipathL3 (addresses only).
	MultipathHash string
	VPNs          []*VPN
	VXLANs        []*VXLAN
	// Devices are the tunnel devices the config creates (IPsec, GRE,
	// WireGuard).
	Devices    []*Device
	Identities []*Identity
	// Groups are failover and balance groups of identities.
	Groups     []*Group
	Routes     []*Route
	Local      []*Local
	Redirect   *Redirect
	Select     []*Selector
	KillSwitch *KillSwitch
	// BGP is this namespace's BGP speaker, nil if none.
	BGP *BGP
	// Domains and Pipes exist only at the top level.
	Domains []*Domain
	Pipes   []*Pipe
	// Asserts are the properties `tunroute check` proves (assert.go).
	Asserts []*Assertion
}

// GatewayMode says how an identity reaches beyond its device.
type GatewayMode int

const (
	// GatewayAuto discovers the gateway from the live main table.
	GatewayAuto GatewayMode = iota
	// GatewayNone sends straight out of the device (point-to-point).
	GatewayNone
	// GatewayLiteral uses the addresses given.
	GatewayLiteral
)

// Identity is a source address (or several) with its own routing table and
// an `from ADDR iif lo` rule (dual identity).
type Identity struct {
	Name string
	// VPN names the connection whose hook supplies the device, the
	// addresses and the gateway at run time; "" for a static identity.
	VPN    string
	Device string
	// Addresses given literally; AutoAddresses means "the global addresses
	// currently on Device" (the default).
	Addresses     []netip.Addr
	AutoAddresses bool
	Gateway       GatewayMode
	Gateways      []netip.Addr // GatewayLiteral: at most one per family
	// Table and Priority are 0 when tunroute picks them.
	Table    uint32
	Priority uint32
	// Health is the identity's health check, nil if none (the identity
	// then counts as healthy while it exists).
	Health *Health

	positions
}

// Route sends destinations through an identity by default (main-table
// routes via its device with its address as source), or is a
// blackhole/unreachable/prohibit/throw entry.
type Route struct {
	To []netip.Prefix
	// File is the list the destinations were read from (to_file), "" if
	// they were given inline. Routes from files compile to a compact set.
	File   string
	Via    string // identity name; "" for the non-unicast types
	Type   state.RouteType
	Table  uint32 // default main
	Metric uint32

	positions
}

// Local is the local traffic table, the "iproute2 alias": a table
// consulted for all locally generated traffic (`iif lo`) whose routes
// into the tunnel carry `src Source`, so replies come back through the tunnel.
type Local struct {
	To     []netip.Prefix
	Via    string
	Source netip.Addr
	// AddAddress, if set, is the device that gets Source as a /32 or /128
	// (a private-side address for a host without such an interface).
	AddAddress string
	Table      uint32
	Priority   uint32

	positions
}

// Redirect is the gateway redirect: two half-default routes into
// the tunnel, host routes to the VPN servers via the original gateway,
// LAN prefixes kept local. The original default route is never touched.
type Redirect struct {
	Via     string
	Servers []netip.Addr
	LAN     []netip.Prefix
	IPv4    bool
	IPv6    bool
	// FamiliesGiven is false when `families` was omitted: then each family
	// is redirected if the identity has an address in it.
	FamiliesGiven bool

	positions
}

// VPN returns the VPN with the given name, or nil.
func (c *Config) VPN(name string) *VPN {
	return byName(c.VPNs, name)
}

// Identity returns the identity with the given name, or nil.
func (c *Config) Identity(name string) *Identity {
	return byName(c.Identities, name)
}
