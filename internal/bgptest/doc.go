// Package bgptest tests the BGP speakers of routing domains with the real
// engine (BIRD 2) in network namespaces: two sites joined by a WireGuard
// tunnel, each with a private and a hostile domain of overlapping ranges,
// one BIRD instance per domain per site.
//
// The tests need root, ip(8), nft(8) and BIRD 2 (apt-get install bird2);
// they skip without them. Every namespace is named tr-bgp<pid>-... and
// removed when the test ends, pass or fail.
package bgptest
