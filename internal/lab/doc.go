// Package lab builds tunroute's demo and test topology in network
// namespaces, runs a real VPN in it, and makes traffic to prove paths.
//
//	PREFIXclient    eth0 10.1.0.2/24     2001:db8:1::2/64   -- c0 10.1.0.1/24     2001:db8:1::1/64   ┐
//	                wg0  10.30.0.2/24    2001:db8:30::2/64                                          │ PREFIXisp
//	PREFIXvpnserver eth0 198.51.100.2/24 2001:db8:51::2/64  -- s0 198.51.100.1/24 2001:db8:51::1/64  │ forwards v4+v6,
//	                wg0  10.30.0.1/24    2001:db8:30::1/64     (masquerades 10.30.0.0/24, 2001:db8:30::/64) │ no NAT
//	PREFIXinet      eth0 203.0.113.2/24  2001:db8:203::2/64 -- i0 203.0.113.1/24  2001:db8:203::1/64 ┘
//
// client, vpnserver and inet have default routes (v4 and v6) via their ISP
// side. WireGuard runs between client and vpnserver (UDP 51820 on
// 198.51.100.2); the client's peer allows 0.0.0.0/0 and ::/0 but the client
// has no route through wg0 beyond its connected prefixes: tunroute's config
// adds them. inet runs an echo server on TCP 8080 that answers each
// connection with the address it came from.
//
// Nothing outside Go is needed: namespaces are created with unshare and a
// bind mount under /run/netns (so `ip netns` sees them), links, addresses
// and routes with netlink, the masquerade with nftables over netlink, and
// WireGuard is wireguard-go running in this process on TUN devices. A TUN
// device and a socket belong to the namespace of the thread that created
// them; Do runs code on a thread inside a namespace for that.
//
// The host's initial namespace is never changed: every netlink, nftables
// and /proc/sys operation goes through a socket or file opened inside a lab
// namespace, and veth pairs are created in one lab namespace with their
// peer put straight into another.
//
// Because the WireGuard devices live in a process, Up starts a detached
// background process (`tunroute lab serve`) that holds them, runs the echo
// server and serves WireGuard's UAPI on unix sockets under RunDir; Down
// stops it and deletes the namespaces.
//
// This package holds only what `tunroute lab` (up, down, demo, serve)
// needs. The tests build on it with package labtest (OpenVPN and tinc
// daemons in the lab's namespaces) and package testns (the host guard,
// namespace cleanup).
package lab
