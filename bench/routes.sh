#!/usr/bin/env bash
# Large route tables: tunroute against iproute2. Prints figures;
# it is not a test. Needs root, go, iproute2 and /usr/bin/time.
#
#   bash bench/routes.sh                 # 100k and 1M IPv4, 100k IPv6
#   bash bench/routes.sh 4:20000 6:5000  # other cases: FAMILY:N ...
#
# For each case, in a fresh network namespace tr-bench-<pid>-<case>:
#   ip -batch      inserting the list (route add P via GW dev wg0 table T src ADDR proto 116)
#   ip -batch nh   the same through a nexthop object (route add P nhid 1 table T src ADDR
#                  proto 116), which is how tunroute inserts a list: the kernel's fast path
#   stream         bench/routestream: the bare stream of the same RTM_NEWROUTE messages
#                  tunroute sends (nexthop object, 1,000 per sendmsg, ack on the last),
#                  the reference a full apply is measured against (apply/stream)
#   ip show        `ip route show table T` of the full table, to /dev/null
#   ip flush       `ip route flush table T`
#   apply          `tunroute apply` of a config whose routes come from the
#                  same list (routes: [{to_file: list, via: vpn, table: T}])
#   plan 0         `tunroute plan` with nothing to change
#   1% apply       `tunroute apply` after 1% of the list was replaced (1% of
#                  the prefixes removed and as many new ones added: plan,
#                  diff and apply, the whole command)
#   1% run         `tunroute apply` of a 1% change (and back) with `tunroute run`
#                  working on the namespace: the daemon applies it, from the
#                  routes its last check read and its watchers keep (best of 3)
#   down           `tunroute down`
# IP_PLAIN=0 leaves out ip -batch, ip show and ip flush (slow on a busy machine);
# TUNROUTE=/path/to/tunroute uses that binary instead of building one;
# REPEAT=N runs each case N times and keeps each command's shortest time
# (and largest RSS), for machines that are busy with other work.
# Times are wall-clock of the whole command; RSS is the peak resident set
# (/usr/bin/time's maxrss) of each command. The IPv4 lists have an
# Internet-like mix of prefix lengths (mostly /24, then /22-/23,
# /16-/21, some longer) over the unicast space outside private and
# loopback ranges, so they cannot be confused with the lab's addresses;
# they live only in a table of the benchmark's own namespace that no
# rule consults, with no uplink, and no packet is sent. The IPv6 lists are
# inside 2001:db8::/32. Lists are deterministic (fixed seeds).
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
bench_init bench/routes.sh /usr/bin/time
bench_digits=2
bench_gives_up=ipflush # ip route flush stops after 30 s on a busy machine: its time is then a lower bound

cases=("$@")
((${#cases[@]})) || cases=(4:100000 4:1000000 6:100000)
repeat=${REPEAT:-1}
table=1000

namespaces=()
bench_on_exit 'for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done'

bench_build
go build -o "$tmp/routestream" ./bench/routestream

# count NS FAMILY: routes in the benchmark's table.
count() {
	ip -n "$1" "-$2" route show table "$table" | wc -l
}

# div A B FORMAT: A / B.
div() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (a != "" && b > 0) printf f, a / b; else printf "-" }'; }

fmt='%-4s %8s | %8s %6s %6s %6s %8s %6s %8s | %7s %6s | %8s %6s | %8s %7s | %7s %7s | %9s %5s %5s %5s | %6s\n'
# CPU time (user + system) of the stream and of apply: on a busy machine
# the wall clock also counts waiting for a CPU.
cfmt='%-4s %8s | %10s %10s %8s\n'

rows=()
crows=()
for c in "${cases[@]}"; do
	fam=${c%%:*}
	n=${c#*:}
	case "$fam" in 4 | 6) ;; *) echo "bench/routes.sh: case $c: family must be 4 or 6" >&2; exit 1 ;; esac
	ns="${NS_PREFIX:-tr-bench}-$$-$fam-$n" # NS_PREFIX: the namespace name's start
	namespaces+=("$ns")
	dir="$tmp/$fam-$n"
	mkdir -p "$dir"
	echo "case IPv$fam, $n routes: generating lists..." >&2
	"$tmp/routegen" list -family "$fam" -n "$n" -seed 1 >"$dir/full.txt"
	"$tmp/routegen" change -pct 1 -seed 2 <"$dir/full.txt" >"$dir/changed.txt"
	if [ "$fam" = 4 ]; then
		gw=10.30.0.1 src=10.30.0.2
	else
		gw=2001:db8:30::1 src=2001:db8:30::2
	fi
	sed "s|.*|route add & via $gw dev wg0 table $table src $src proto 116|" "$dir/full.txt" >"$dir/batch.txt"
	sed "s|.*|route add & nhid 1 table $table src $src proto 116|" "$dir/full.txt" >"$dir/batchnh.txt"
	{
		cat bench/identity.yaml
		cat <<EOF
routes:
  - to_file: list.txt
    via: vpn
    table: $table
EOF
	} >"$dir/tunroute.yaml"
	cp "$dir/full.txt" "$dir/list.txt"

	for v in ipadd ipnh stream apply plan0 change chd down ipshow ipflush; do unset "t_$v" "m_$v" "c_$v"; done
	for ((rep = 1; rep <= repeat; rep++)); do
		cp "$dir/full.txt" "$dir/list.txt"
		ip netns del "$ns" 2>/dev/null || true
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
		ip -n "$ns" link add wg0 type veth peer name wgpeer
		ip -n "$ns" addr add 10.30.0.2/24 dev wg0
		ip -n "$ns" addr add 2001:db8:30::2/64 dev wg0 nodad
		ip -n "$ns" link set wg0 up
		ip -n "$ns" link set wgpeer up

		if [ "${IP_PLAIN:-1}" != 0 ]; then
			echo "case IPv$fam, $n routes, run $rep: ip -batch..." >&2
			run ipadd ip -n "$ns" -batch "$dir/batch.txt"
			got=$(count "$ns" "$fam")
			[ "$got" = "$n" ] || { echo "bench/routes.sh: ip -batch left $got routes, want $n" >&2; exit 1; }
			run ipshow ip -n "$ns" "-$fam" route show table "$table"
			run ipflush ip -n "$ns" "-$fam" route flush table "$table"
			for ((try = 0; try < 20 && $(count "$ns" "$fam") > 0; try++)); do
				ip -n "$ns" "-$fam" route flush table "$table" 2>/dev/null || true
			done
			[ "$(count "$ns" "$fam")" = 0 ] || { echo "bench/routes.sh: ip route flush left routes" >&2; exit 1; }
		fi
		ip -n "$ns" nexthop add id 1 via "$gw" dev wg0
		run ipnh ip -n "$ns" -batch "$dir/batchnh.txt"
		got=$(count "$ns" "$fam")
		[ "$got" = "$n" ] || { echo "bench/routes.sh: ip -batch (nhid) left $got routes, want $n" >&2; exit 1; }
		ip -n "$ns" nexthop del id 1 # and its routes
		[ "$(count "$ns" "$fam")" = 0 ] || { echo "bench/routes.sh: routes left after deleting the nexthop" >&2; exit 1; }
		echo "case IPv$fam, $n routes, run $rep: bare netlink stream..." >&2
		ip -n "$ns" nexthop add id 1 via "$gw" dev wg0
		run stream "$tmp/routestream" -netns "$ns" -list "$dir/full.txt" -table "$table" -nhid 1 -src "$src"
		got=$(count "$ns" "$fam")
		[ "$got" = "$n" ] || { echo "bench/routes.sh: the stream left $got routes, want $n" >&2; exit 1; }
		ip -n "$ns" nexthop del id 1
		[ "$(count "$ns" "$fam")" = 0 ] || { echo "bench/routes.sh: routes left after deleting the nexthop" >&2; exit 1; }

		tr=("$tmp/tunroute" --run-dir "$tmp/run" --netns "$ns" -c "$dir/tunroute.yaml")
		echo "case IPv$fam, $n routes, run $rep: tunroute apply..." >&2
		run apply "${tr[@]:0:1}" apply "${tr[@]:1}"
		got=$(count "$ns" "$fam")
		[ "$got" = "$n" ] || { echo "bench/routes.sh: tunroute apply left $got routes, want $n" >&2; exit 1; }
		echo "case IPv$fam, $n routes, run $rep: tunroute plan (no change)..." >&2
		run plan0 "${tr[@]:0:1}" plan "${tr[@]:1}"
		grep -q "^No changes" "$tmp/out" || { echo "bench/routes.sh: the plan after apply is not empty:" >&2; head "$tmp/out" >&2; exit 1; }
		echo "case IPv$fam, $n routes, run $rep: tunroute apply of a 1% change..." >&2
		cp "$dir/changed.txt" "$dir/list.txt"
		run change "${tr[@]:0:1}" apply "${tr[@]:1}"
		got=$(count "$ns" "$fam")
		[ "$got" = "$n" ] || { echo "bench/routes.sh: after the change $got routes, want $n" >&2; exit 1; }
		echo "case IPv$fam, $n routes, run $rep: tunroute run, and 1% changes through it..." >&2
		"${tr[@]:0:1}" run "${tr[@]:1}" >"$tmp/run.log" 2>&1 &
		runpid=$!
		for ((i = 0; i < 600; i++)); do
			"${tr[@]:0:1}" status "${tr[@]:1}" 2>/dev/null | grep -q 'tunroute run: up' && break
			sleep 0.1
		done
		for list in full changed full; do
			# The daemon's check after the last apply reads the table again
			# and keeps it (kernel.RouteCache): the next apply reads nothing.
			sleep 3
			cp "$dir/$list.txt" "$dir/list.txt"
			run chd "${tr[@]:0:1}" apply "${tr[@]:1}"
			grep -q 'Applied: 10* added' "$tmp/out" || { echo "bench/routes.sh: the change through tunroute run:" >&2; cat "$tmp/out" >&2; exit 1; }
		done
		"${tr[@]:0:1}" status "${tr[@]:1}" | grep -q 'made for the commands: .*[1-9][0-9]* applies' ||
			{ echo "bench/routes.sh: the applies did not go through tunroute run" >&2; exit 1; }
		kill "$runpid"
		wait "$runpid" || true
		echo "case IPv$fam, $n routes, run $rep: tunroute down..." >&2
		run down "$tmp/tunroute" --run-dir "$tmp/run" --netns "$ns" down
		[ "$(count "$ns" "$fam")" = 0 ] || { echo "bench/routes.sh: tunroute down left routes" >&2; exit 1; }
		ip netns del "$ns"
	done
	# shellcheck disable=SC2059
	rows+=("$(printf "$fmt" "v$fam" "$n" "${t_ipadd:--}" "$t_ipnh" "$t_apply" "$(div "${t_ipadd:-}" "$t_apply" '%.1fx')" "$(div "$t_ipnh" "$t_apply" '%.1fx')" \
		"$t_stream" "$(div "$t_apply" "$t_stream" '%.2fx')" \
		"${t_ipshow:--}" "$t_plan0" "${t_ipflush:--}" "$t_down" "$t_change" "$(div "$t_change" "$t_apply" '%.4f' | awk '{ printf "%.1f%%", $1 * 100 }')" \
		"$t_chd" "$(div "$t_chd" "$t_apply" '%.4f' | awk '{ printf "%.1f%%", $1 * 100 }')" \
		"$m_apply" "$m_plan0" "$m_change" "$m_down" "${m_ipadd:--}")")
	# shellcheck disable=SC2059
	crows+=("$(printf "$cfmt" "v$fam" "$n" "$c_stream" "$c_apply" "$(div "$c_apply" "$c_stream" '%.2fx')")")
done

echo
echo "kernel $(uname -r), $(nproc) CPUs, $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg); times in seconds (best of $repeat), RSS in MB"
# shellcheck disable=SC2059
printf "$fmt" "" "routes" "ip-batch" "ip-nh" "apply" "ratio" "ratio-nh" "stream" "ap/strm" "ip-show" "plan0" "ip-flush" "down" "1%-apply" "of-full" "1%-run" "of-full" \
	"RSS:apply" "plan0" "1%" "down" "ip-RSS"
for r in "${rows[@]}"; do printf '%s\n' "$r"; done
echo
echo "CPU time (user + system, seconds, best of $repeat):"
# shellcheck disable=SC2059
printf "$cfmt" "" "routes" "cpu:stream" "cpu:apply" "ap/strm"
for r in "${crows[@]}"; do printf '%s\n' "$r"; done
