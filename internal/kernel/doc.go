// Package kernel observes and changes the routing state of one network
// namespace through rtnetlink, and tunroute's own nftables table through
// nfnetlink. It is the only package of tunroute that talks to the kernel:
// everything else works on state.State values.
//
// Open a Handle on a namespace, Observe it into a state.State, Execute
// state.Ops on it. Messages are encoded straight into one buffer and sent
// many per sendmsg, and dumps are decoded in place, because a routing table
// may hold a million routes.
//
// # One way per protocol
//
// rtnetlink (links, addresses, routes, rules, nexthop objects, address
// labels, netns ids, route queries, moving a device to another namespace,
// the daemon's event stream) goes only through the package's own wire code:
// wire.go encodes and decodes, socket.go sends, batches and reads. A
// library's one-request-one-ack call and its per-message structs cannot
// carry a million routes (`go test -run x -bench Routes ./internal/kernel/`:
// Execute adds 115k routes/s, `ip -batch` 7.7k/s; the README's "Large
// tables" has a full apply of 1M routes 4.9x faster than ip -batch), and
// the same encoders then serve the small
// calls too, so that what tunroute writes is exactly what it observed: a
// device moved between namespaces gets back its addresses as they were,
// where vishvananda/netlink's AddrReplace adds a broadcast address the
// address never had.
//
// nf_tables (tunroute's table) is written as one transaction and read over
// NETLINK_NETFILTER by the same conn type (nft_conn.go says why
// google/nftables' Conn is not used); the rule expressions are encoded and
// decoded by google/nftables' expr package, the one place that knows them,
// except byteorder, which its v0.3.0 (the newest) cannot decode.
//
// Connection tracking (a different netfilter subsystem, one call after a
// failover) uses vishvananda/netlink's conntrack filter, the only code here
// that speaks it; WireGuard devices are configured through wgctrl (generic
// netlink, or the userspace daemon's socket); vishvananda/netns enters and
// names namespaces (setns, /run/netns), which is not netlink.
package kernel
