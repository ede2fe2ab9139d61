// Package vmtest holds the tests of the devices this machine's kernel
// lacks (xfrm, vti, vti6, gre, ip6gre, kernel WireGuard). They run only
// inside the VM that scripts/vmtest.sh boots (a stock Debian kernel in
// QEMU, with this test binary over 9p), where TUNROUTE_VM=1 is set;
// elsewhere they skip.
package vmtest
