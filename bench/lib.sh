# Shared by the benchmark scripts (sourced, not run): the checks they
# start with, building the binaries, and timing a command.
#
#   . bench/lib.sh
#   bench_init bench/NAME.sh [CMD...]  # root, go, ip and CMDs; $tmp and its cleanup
#   bench_build                        # $tmp/routegen and $tmp/tunroute (TUNROUTE: use that binary)
#   bench_big_namespace NS PEER N4 N6  # a host with a full foreign BGP table in main
#   run NAME CMD...                    # t_NAME, c_NAME, m_NAME: best time and CPU, largest RSS (needs /usr/bin/time)
#
# A script adds its own cleanup steps with bench_on_exit 'COMMANDS'.

# bench_init NAME [CMD...]: fails unless root with go, ip and the CMDs;
# makes the scratch directory $tmp, removed (with what bench_on_exit adds)
# when the script ends or is interrupted.
bench_init() {
	bench=$1
	shift
	if [ "$(id -u)" != 0 ]; then
		echo "$bench: needs root (network namespaces)" >&2
		exit 1
	fi
	command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
	for c in go ip "$@"; do
		command -v "$c" >/dev/null || { echo "$bench: needs $c" >&2; exit 1; }
	done
	tmp=$(mktemp -d "/tmp/tr-bench-$(basename "$bench" .sh).XXXXXX")
	bench_exit=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_on_exit() { bench_exit+=("$1"); }

bench_cleanup() {
	local c
	for c in "${bench_exit[@]}"; do eval "$c" || true; done
	rm -rf "$tmp"
}

# bench_build: the route list generator and tunroute, into $tmp; tr is
# the command line of tunroute with a run directory of its own.
bench_build() {
	echo "building routegen and tunroute..." >&2
	go build -o "$tmp/routegen" ./bench/routegen
	if [ -n "${TUNROUTE:-}" ]; then
		cp "$TUNROUTE" "$tmp/tunroute" # a binary built elsewhere
	else
		go build -o "$tmp/tunroute" ./cmd/tunroute
	fi
	tr=("$tmp/tunroute" --run-dir "$tmp/run")
}

# run NAME CMD...: runs CMD and records its wall time, CPU time (user +
# system) and peak RSS as t_NAME, c_NAME and m_NAME (seconds with
# $bench_digits decimals, default 3; MB): over repetitions, the shortest
# times and the largest RSS. CMD's output goes to $tmp/out (with
# bench_discard_stdout set, only its standard error: the rest to
# /dev/null). It fails the benchmark if CMD fails, but for exit 2 of a
# tunroute plan ("changes pending"), any exit of the program named by
# bench_tolerate (e.g. ip -force -batch, whose failed queries are answers),
# and a failure of the run named by bench_gives_up (e.g. ip route flush,
# which stops after 30 s on a busy machine): its time is then a lower
# bound, marked with ">".
run() {
	local name=$1
	shift
	local start end rc=0 t c m u s tv="t_$name" cv="c_$name" mv="m_$name"
	local digits=${bench_digits:-3}
	start=$(date +%s.%N)
	if [ -n "${bench_discard_stdout:-}" ]; then
		/usr/bin/time -f '%M %U %S' -o "$tmp/rss" "$@" >/dev/null 2>"$tmp/out" || rc=$?
	else
		/usr/bin/time -f '%M %U %S' -o "$tmp/rss" "$@" >"$tmp/out" 2>&1 || rc=$?
	fi
	end=$(date +%s.%N)
	if [ "$rc" != 0 ] && [ "$name" = "${bench_gives_up:-}" ]; then
		printf -v "$tv" '>%s' "$(awk "BEGIN {printf \"%.${digits}f\", $end - $start}")"
		return 0
	fi
	if [ "$rc" != 0 ] && [ "$1" != "${bench_tolerate:-}" ] &&
		! { [ "$rc" = 2 ] && [ "$1" = "$tmp/tunroute" ] && [[ " $* " == *" plan "* ]]; }; then
		echo "$bench: $name: $* failed ($rc):" >&2
		tail -20 "$tmp/out" >&2
		exit 1
	fi
	t=$(awk "BEGIN {printf \"%.${digits}f\", $end - $start}")
	read -r m u s < <(tail -1 "$tmp/rss")
	m=$((m / 1024))
	c=$(awk "BEGIN {printf \"%.${digits}f\", $u + $s}")
	if [ -z "${!tv:-}" ] || awk "BEGIN {exit !($t < ${!tv})}"; then printf -v "$tv" '%s' "$t"; fi
	if [ -z "${!cv:-}" ] || awk "BEGIN {exit !($c < ${!cv})}"; then printf -v "$cv" '%s' "$c"; fi
	if [ -z "${!mv:-}" ] || [ "$m" -gt "${!mv}" ]; then printf -v "$mv" '%s' "$m"; fi
}

# bench_big_namespace NS PEER N4 N6: the big host of bench/bigtable.sh and
# bench/daemon-idle.sh, deleted when the script ends: in NS an uplink eth0
# (192.0.2.10/24, default via 192.0.2.1 proto static, the other end in
# PEER), a tun wg0 (10.66.0.2/32, fd00:66::2/128: the tunnel), and N4
# IPv4 and N6 IPv6 foreign routes (proto bgp) in main, from
# $tmp/routegen (bench_build). Sets have4 and have6 to the routes main
# then holds.
bench_big_namespace() {
	local ns=$1 peer=$2 n4=$3 n6=$4
	bench_on_exit "ip netns del $ns 2>/dev/null"
	bench_on_exit "ip netns del $peer 2>/dev/null"
	echo "building $ns with $n4 IPv4 and $n6 IPv6 foreign routes..." >&2
	ip netns add "$ns"
	ip netns add "$peer"
	ip -n "$ns" link add eth0 type veth peer name eth0p netns "$peer"
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add 192.0.2.10/24 dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$peer" link set eth0p up
	ip -n "$peer" addr add 192.0.2.1/24 dev eth0p
	ip -n "$ns" route add default via 192.0.2.1 dev eth0 proto static
	ip -n "$ns" tuntap add wg0 mode tun
	ip -n "$ns" addr add 10.66.0.2/32 dev wg0
	ip -n "$ns" addr add fd00:66::2/128 dev wg0 nodad
	ip -n "$ns" link set wg0 up
	{
		"$tmp/routegen" list -family 4 -n "$n4" -seed 7 | sed 's|.*|route add & via 192.0.2.1 dev eth0 proto bgp|'
		"$tmp/routegen" list -family 6 -n "$n6" -seed 8 | sed 's|.*|route add & dev eth0 proto bgp|'
	} >"$tmp/routes.batch"
	ip -n "$ns" -batch "$tmp/routes.batch"
	have4=$(ip -n "$ns" -4 route show | wc -l)
	have6=$(ip -n "$ns" -6 route show | wc -l)
	echo "main table: $have4 IPv4, $have6 IPv6 routes" >&2
}
