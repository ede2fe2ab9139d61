// Package devtest holds the root tests of tunroute's tunnel devices:
// WireGuard configured natively (through wgctrl, here over wireguard-go's
// UAPI socket, as this kernel has no WireGuard module), wg-quick's full
// tunnel and its CVE-2019-14899 guard against an attacker on the uplink.
// The kernel-only kinds (xfrm, vti, gre, kernel WireGuard) are tested in a
// VM by scripts/vmtest.sh. Namespaces are named tr-dev<pid>-*.
package devtest
