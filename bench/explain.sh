#!/usr/bin/env bash
# Performance of `tunroute explain --batch` against the kernel, whole
# processes on the same namespace. Prints figures; it is not a test.
#
# Builds a throw-away network namespace tr-fb-<pid> (NS_PREFIX-<pid>) holding a full-table
# host (internal/fib/fibbench: four uplinks, 1,000,000 IPv4 routes with an
# Internet-like prefix-length mix and 100,000 IPv6 routes, 97% of them in
# main, inserted with ip -batch), and 1,000,000 random `route get` lines.
# Then, with no extra rule and again behind 1,000 rules that a plain query
# does not match, it times as whole processes, output to /dev/null:
#   ip      ip -n NS -force -batch QUERIES
#   explain tunroute --netns NS explain --batch QUERIES  (reads the
#           namespace itself: the dump, the FIB build, the answers, JSON
#           with the trace)
#   explain1 the same with the first query 1,001 times: explain's fixed cost
#           (the read of the namespace and the FIB build; up to 1,000 queries
#           are answered without that read), which a whole-process ratio over
#           a full-table host is mostly made of
#   few     the first 1,000 IPv4 queries, which explain answers without
#           reading the big tables (the kernel asked for each), against ip
#           (their answers are checked against the whole read's)
# and prints both times and the ratio side by side, then the cost of a
# query beyond the fixed one: ip's time / queries against (explain -
# explain1) / queries. Each tunroute run's output is checked once (one
# JSON object per query, no error).
# Needs root, go, iproute2, awk and /usr/bin/time; touches nothing outside
# the namespace, which it deletes (also when interrupted).
#
#   sudo bash bench/explain.sh                         # full size (several minutes)
#   sudo N4=100000 N6=10000 QUERIES=100000 bash bench/explain.sh   # quicker
#   REPEAT=3 ...                                       # best of 3 per figure
#   TUNROUTE=/path/to/tunroute ...                     # a binary built elsewhere
#   INPROCESS=1 ...                                    # also the in-process
#          figures (fibdiff TestBenchKernel: fib.Batch on the observed snapshot,
#          and internal/fib TestBenchReport without a kernel)
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
bench_init bench/explain.sh awk /usr/bin/time
bench_digits=2
bench_discard_stdout=1 # a million answers
bench_tolerate=ip      # ip -force -batch exits 1 when a query fails: an answer, not a failure

n4=${N4:-1000000}
n6=${N6:-100000}
nq=${QUERIES:-1000000}
nrules=${RULES:-1000}
repeat=${REPEAT:-1}

ns="${NS_PREFIX:-tr-fb}-$$" # NS_PREFIX: the namespace name's start
bench_on_exit 'ip netns del "$ns" 2>/dev/null'

bench_build
echo "generating $n4 IPv4 + $n6 IPv6 routes, $nrules rules, $nq queries..." >&2
"$tmp/routegen" fib -n4 "$n4" -n6 "$n6" -rules "$nrules" -queries "$nq" -dir "$tmp"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
ip -n "$ns" -batch "$tmp/setup"
echo "loading the routes with ip -batch..." >&2
ip -n "$ns" -batch "$tmp/routes"
got=$(($(ip -n "$ns" -4 route show table all | wc -l) + $(ip -n "$ns" -6 route show table all | wc -l)))
[ "$got" -ge $((n4 + n6)) ] || { echo "bench/explain.sh: the namespace holds $got routes, want at least $((n4 + n6))" >&2; exit 1; }

# check: tunroute's answers, one JSON object per query, none an error
# of the query itself.
check() {
	"$tmp/tunroute" --netns "$ns" explain --batch "$tmp/queries" >"$tmp/answers"
	local lines errors
	lines=$(wc -l <"$tmp/answers")
	errors=$(grep -c '"error":' "$tmp/answers" || true)
	[ "$lines" = "$nq" ] || { echo "bench/explain.sh: explain --batch printed $lines lines, want $nq" >&2; exit 1; }
	[ "$errors" = 0 ] || { echo "bench/explain.sh: explain --batch: $errors errors:" >&2; grep -m3 '"error":' "$tmp/answers" >&2; exit 1; }
	rm -f "$tmp/answers"
}

div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else printf "-" }'; }
# perq T FIXED: microseconds a query beyond the fixed cost.
perq() { awk -v n="$nq" -v t="$1" -v f="$2" 'BEGIN { printf "%.2f", (t - f) / n * 1e6 }'; }
rate() { awk -v n="$nq" -v t="$1" 'BEGIN { if (t > 0) printf "%.0f", n / t; else printf "-" }'; }

fmt='%-10s %9s | %8s %10s %7s | %8s %10s %7s | %7s\n'
# CPU time (user + system): on a busy machine the wall clock also counts
# waiting for a CPU; tunroute answers on every CPU, ip on one.
cfmt='%-10s %9s | %8s %8s | %7s\n'
qfmt='%-10s | %9s | %9s %11s | %7s\n'
qrows=()
rows=()
crows=()
measure() {
	local label=$1
	unset t_ip m_ip t_ex m_ex c_ip c_ex t_ex1 m_ex1 c_ex1
	check
	for ((rep = 1; rep <= repeat; rep++)); do
		echo "$label, run $rep: ip -force -batch..." >&2
		run ip ip -n "$ns" -force -batch "$tmp/queries"
		echo "$label, run $rep: tunroute explain --batch..." >&2
		run ex "$tmp/tunroute" --netns "$ns" explain --batch "$tmp/queries"
		echo "$label, run $rep: tunroute explain --batch, one query..." >&2
		run ex1 "$tmp/tunroute" --netns "$ns" explain --batch "$tmp/query1"
	done
	# shellcheck disable=SC2059
	rows+=("$(printf "$fmt" "$label" "$nq" "$t_ip" "$(rate "$t_ip")" "$m_ip" "$t_ex" "$(rate "$t_ex")" "$m_ex" "$(div "$t_ip" "$t_ex")")")
	# shellcheck disable=SC2059
	qrows+=("$(printf "$qfmt" "$label" "$t_ex1" "$(perq "$t_ip" 0)" "$(perq "$t_ex" "$t_ex1")" "$(div "$t_ip" "$(awk -v a="$t_ex" -v b="$t_ex1" 'BEGIN { printf "%f", a - b }')")")")
	# shellcheck disable=SC2059
	crows+=("$(printf "$cfmt" "$label" "$nq" "$c_ip" "$c_ex" "$(div "$c_ip" "$c_ex")")")
}

for ((i = 0; i < 1001; i++)); do head -1 "$tmp/queries"; done >"$tmp/query1"
awk '!/:/ && n < 1000 { print; n++ }' "$tmp/queries" >"$tmp/few"
{ cat "$tmp/few"; head -1 "$tmp/few"; } >"$tmp/few1001"
frows=()
ffmt='%-10s %9s | %8s %8s %7s | %7s\n'
# measure_few LABEL: the few queries, through explain's few path and ip;
# the answers must be those of the whole read (the same lines and one
# more, which makes them too many for the few path).
measure_few() {
	local label=$1
	unset t_ipf m_ipf t_exf m_exf c_ipf c_exf
	"$tmp/tunroute" --netns "$ns" explain --batch "$tmp/few" >"$tmp/few.out"
	"$tmp/tunroute" --netns "$ns" explain --batch "$tmp/few1001" >"$tmp/few1001.out"
	head -1000 "$tmp/few1001.out" | cmp -s - "$tmp/few.out" ||
		{ echo "bench/explain.sh: $label: explain --batch of 1,000 queries differs from the whole read's answers" >&2; exit 1; }
	for ((rep = 1; rep <= repeat; rep++)); do
		echo "$label, run $rep: 1,000 queries, ip and explain..." >&2
		run ipf ip -n "$ns" -force -batch "$tmp/few"
		run exf "$tmp/tunroute" --netns "$ns" explain --batch "$tmp/few"
	done
	# shellcheck disable=SC2059
	frows+=("$(printf "$ffmt" "$label" 1000 "$t_ipf" "$t_exf" "$m_exf" "$(div "$t_ipf" "$t_exf")")")
}
measure "0 rules"
measure_few "0 rules"
ip -n "$ns" -4 -batch "$tmp/rules4"
ip -n "$ns" -6 -batch "$tmp/rules6"
measure "$nrules rules"
measure_few "$nrules rules"

echo
echo "kernel $(uname -r), $(nproc) CPUs, $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "namespace: $n4 IPv4 + $n6 IPv6 routes (97% in main); times in seconds (best of $repeat), rates in queries/s, RSS in MB"
# shellcheck disable=SC2059
printf "$fmt" "" "queries" "ip" "ip q/s" "ip-RSS" "explain" "explain q/s" "RSS" "ratio"
for r in "${rows[@]}"; do printf '%s\n' "$r"; done
echo
echo "CPU time (user + system, seconds, best of $repeat):"
# shellcheck disable=SC2059
printf "$cfmt" "" "queries" "cpu:ip" "cpu:expl" "ratio"
for r in "${crows[@]}"; do printf '%s\n' "$r"; done
echo
echo "Beyond the fixed cost (explain of 1,001 queries: the read and the FIB build), microseconds a query:"
# shellcheck disable=SC2059
printf "$qfmt" "" "explain1" "ip/query" "explain/query" "ratio"
for r in "${qrows[@]}"; do printf '%s\n' "$r"; done
echo
echo "A few queries (1,000 IPv4), answered without reading the big tables:"
# shellcheck disable=SC2059
printf "$ffmt" "" "queries" "ip" "explain" "RSS" "ratio"
for r in "${frows[@]}"; do printf '%s\n' "$r"; done

if [ -n "${INPROCESS:-}" ]; then
	export TUNROUTE_BENCH=1 TUNROUTE_BENCH_ROUTES="$n4"
	echo "== in-process: fib.Batch on the observed snapshot (internal/fib/fibdiff TestBenchKernel)"
	go test -count=1 -timeout 60m -run '^TestBenchKernel$' -v ./internal/fib/fibdiff/ | grep -E 'bench_test|^(ok|FAIL|---)'
	echo "== in-process, no kernel (internal/fib TestBenchReport)"
	go test -count=1 -timeout 60m -run '^TestBenchReport$' -v ./internal/fib/ | grep -E 'bench_test|^(ok|FAIL|---)'
fi
