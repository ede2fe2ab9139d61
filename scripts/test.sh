#!/usr/bin/env bash
# Runs tunroute's whole test suite, including the tests that build network
# namespaces (they need root). As root on Debian it first installs what the
# tests need. Usage: bash scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: iproute2 and nftables are the independent
# oracles the kernel tests compare against (ip for routing, nft for
# tunroute's firewall table); the VPN daemons (strongSwan's charon with
# kernel-libipsec comes in libcharon-extra-plugins); bird2 is the BGP
# engine the BGP tests run.
packages=(iproute2 nftables openvpn tinc strongswan-charon strongswan-swanctl libcharon-extra-plugins bird2)
. scripts/debian-packages.sh
install_packages "${packages[@]}" || exit 1
if ! command -v go >/dev/null; then
	export PATH="$PATH:/usr/local/go/bin"
fi
if [ "$(id -u)" != 0 ]; then
	echo "note: not root; the tests that need network namespaces will be skipped" >&2
fi

go vet ./...
# go.mod and go.sum say exactly what the code imports.
if ! go mod tidy -diff >/dev/null; then
	echo "go mod tidy would change go.mod or go.sum: run it and commit the result" >&2
	exit 1
fi
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go test -count=1 -timeout 20m "$@" ./...

# The devices this kernel may lack (xfrm, vti, gre, kernel WireGuard) are
# tested in a VM (about 1.5 minutes the first time, 1 minute after; see
# README). TUNROUTE_SKIP_VM=1 leaves them out; 77 means QEMU cannot run.
if [ -z "${TUNROUTE_SKIP_VM:-}" ] && [ "$(id -u)" = 0 ]; then
	rc=0
	bash scripts/vmtest.sh || rc=$?
	if [ "$rc" = 77 ]; then
		echo "note: QEMU cannot run here; the VM tests of xfrm/vti/gre/kernel WireGuard were skipped" >&2
	elif [ "$rc" != 0 ]; then
		exit "$rc"
	fi
fi
