// Package vpntest tests tunroute with real VPN daemons: OpenVPN and tinc
// run in the lab's network namespaces (internal/lab) and call the real
// tunroute binary as their hook. The tests prove the full tunnel, the
// selectors, coexistence with other tools' objects, the hooks' handling
// of hostile environments, and count the packets that leave the
// client's uplink in clear in each leak scenario (README: "Leaks, and
// what tunroute does about each"). They need
// root, openvpn and tincd; everything lives in namespaces named
// tr-vt<pid>-* (TUNROUTE_TEST_NS changes "tr-vt"), removed even when a test fails.
//
// The package has only tests.
package vpntest
