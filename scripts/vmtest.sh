#!/usr/bin/env bash
# Runs the tests of the devices this machine's kernel may lack (xfrm, vti,
# vti6, gre, ip6gre, kernel WireGuard: internal/vmtest) inside a VM: a stock
# Debian kernel booted by QEMU, with the host's root filesystem read-only
# under an in-memory overlay (so the guest has ip, nft, ...), the test
# binary and its results in a shared directory. Nothing is installed on
# the host but the Debian packages named below; the kernel is downloaded
# and unpacked into a cache, not installed.
#
# Usage: bash scripts/vmtest.sh [go test -run pattern]
# Exit: the tests' status; 125 if the VM did not finish; 77 if QEMU
# cannot run here (then the tests were not run).
#
# Timing (2-core machine, software emulation): see README ("Tunnel devices").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${TUNROUTE_VM_CACHE:-/var/cache/tunroute-vmtest}
run_pattern=${1:-.}
start=$(date +%s.%N)
say() { printf 'vmtest: %s\n' "$*"; }

packages=(qemu-system-x86 busybox-static kmod cpio xz-utils iproute2)
. scripts/debian-packages.sh
if ! install_packages "${packages[@]}"; then
	say "not running the VM tests" >&2
	exit 77
fi
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"

# 1. The kernel: the version linux-image-amd64 points at, unpacked.
mkdir -p "$cache"
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
kv=${pkg#linux-image-}
kroot=$cache/$kv
if [ ! -f "$kroot/done" ]; then
	say "downloading and unpacking $pkg (not installed)"
	rm -rf "$kroot"
	mkdir -p "$kroot"
	(cd "$cache" && apt-get download -q "$pkg" >/dev/null 2>&1 || apt-get download "$pkg")
	dpkg-deb -x "$cache/${pkg}"_*.deb "$kroot"
	rm -f "$cache/${pkg}"_*.deb
	depmod -b "$kroot" "$kv"
	touch "$kroot/done"
fi
vmlinuz=$kroot/boot/vmlinuz-$kv

# 2. The initramfs: busybox, the modules to reach the shared
# directories, an init that mounts them and switches to the overlay.
initrd=$cache/initramfs-$kv.cpio.gz
if [ ! -f "$initrd" ] || [ "$0" -nt "$initrd" ]; then
	say "building the initramfs"
	ir=$(mktemp -d)
	mkdir -p "$ir"/{bin,mods,proc,sys,dev,lower,upper,newroot}
	cp /bin/busybox "$ir/bin/busybox"
	: >"$ir/mods/order"
	for m in virtio_pci 9pnet_virtio 9p overlay; do
		modprobe -d "$kroot" -S "$kv" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
	done | awk '!seen[$0]++' | while read -r ko; do
		base=$(basename "$ko")
		case "$ko" in
		*.xz) xz -dc "$ko" >"$ir/mods/${base%.xz}"; base=${base%.xz} ;;
		*.zst) zstd -qdc "$ko" >"$ir/mods/${base%.zst}"; base=${base%.zst} ;;
		*) cp "$ko" "$ir/mods/$base" ;;
		esac
		echo "$base" >>"$ir/mods/order"
	done
	cat >"$ir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m; done
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o $o,ro hostroot /lower
mount -t tmpfs -o size=256m upper /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot
mkdir -p /newroot/lib/modules /newroot/tunroute-vm
mount -t 9p -o $o,ro kmods /newroot/lib/modules
mount -t 9p -o $o out /newroot/tunroute-vm
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh /tunroute-vm/guest.sh
INIT
	chmod +x "$ir/init"
	(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$ir"
fi

# 3. The tests: one static binary (every exec costs ~0.3 s under emulation).
work=$(mktemp -d /tmp/tr-dev-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go test -c -o "$work/vmtest.test" ./internal/vmtest
CGO_ENABLED=0 go build -o "$work/tunroute" ./cmd/tunroute
cat >"$work/guest.sh" <<GUEST
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
cd /tunroute-vm
echo "guest up: \$(cut -d' ' -f1 /proc/uptime) s after boot, kernel \$(uname -r)" >out.txt
TUNROUTE_VM=1 TUNROUTE_TEST_BIN=/tunroute-vm/tunroute ./vmtest.test -test.v -test.count=1 -test.timeout=10m -test.run '$run_pattern' >>out.txt 2>&1
echo \$? >rc
sync
echo o >/proc/sysrq-trigger
GUEST

# 4. The VM. KVM when the CPU really has it (not this sandbox's PVM),
# else software emulation.
accel=(-accel tcg,thread=multi -cpu max)
if [ -w /dev/kvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then
	accel=(-enable-kvm -cpu host)
fi
say "booting $kv (${accel[*]})"
boot=$(date +%s.%N)
set +e
timeout "${TUNROUTE_VM_TIMEOUT:-600}" qemu-system-x86_64 "${accel[@]}" -m 1024 -smp 2 \
	-nodefaults -no-user-config -display none -no-reboot \
	-kernel "$vmlinuz" -initrd "$initrd" -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
	-serial "file:$work/console.log" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$kroot/lib/modules,mount_tag=kmods,security_model=none,readonly=on" \
	-virtfs "local,path=$work,mount_tag=out,security_model=none"
qemu_rc=$?
set -e
end=$(date +%s.%N)
cat "$work/out.txt" 2>/dev/null || true
if [ ! -f "$work/rc" ]; then
	say "the VM did not finish (qemu exit $qemu_rc); console:"
	tail -40 "$work/console.log" >&2 || true
	exit 125
fi
rc=$(cat "$work/rc")
printf 'vmtest: kernel %s, VM %.1f s, total %.1f s (download/initramfs/build included), tests exit %s\n' \
	"$kv" "$(echo "$end - $boot" | bc)" "$(echo "$end - $start" | bc)" "$rc"
exit "$rc"
