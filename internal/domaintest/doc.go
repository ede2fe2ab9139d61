// Package domaintest tests tunroute's routing domains end to end: the
// real tunroute binary applies configs with domains, pipes, moved
// interfaces and vxlan devices on a namespace the test
// creates as the "host" (--netns), a real OpenVPN's hook moves its tunnel
// into a domain, processes run inside domains with `tunroute exec`, and
// TCP, UDP and ICMP traffic proves what reaches what.
//
// The tests need root; every namespace is named tr-dt<pid>-* and removed
// (after `tunroute down`) even when a test fails. Addresses are private
// or documentation ranges, and traffic flows only between the tests' own
// namespaces. The real host namespace is never changed: TestMain compares
// its rules, tunroute's routes and its nftables tables before and after.
//
// The package has only tests.
package domaintest
