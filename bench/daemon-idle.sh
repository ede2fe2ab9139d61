#!/usr/bin/env bash
# Idle cost of the daemon on a big host: CPU and memory of `tunroute run`
# beside a full BGP table that is not tunroute's (1,000,000 IPv4 and
# 100,000 IPv6 foreign routes in main), over a quiet minute. Prints figures;
# it is not a test. Needs root, go and iproute2.
#
#   bash bench/daemon-idle.sh                     # 1M IPv4 + 100k IPv6, 60 s
#   N4=100000 N6=10000 SECONDS_IDLE=20 bash bench/daemon-idle.sh   # smaller
#   TUNROUTE=/path/to/tunroute bash bench/daemon-idle.sh            # a binary built elsewhere
#
# The namespace is built as bench/bigtable.sh builds it (tr-co-idle-<pid>,
# with a peer tr-co-idlep-<pid>, deleted at the end, also when
# interrupted): eth0 (192.0.2.10/24, default via 192.0.2.1 proto static),
# a tun wg0 (the tunnel), the foreign routes (proto bgp) in main. The daemon
# runs examples/lab-demo.yaml (gateway redirect through wg0, the ISP
# identity with `gateway: auto`). After it is ready and has settled
# (SETTLE seconds, default 5), its CPU time (utime + stime of
# /proc/PID/stat) is read before and after SECONDS_IDLE seconds, and its
# resident memory (VmRSS, and the peak VmHWM, which includes the first
# apply) from /proc/PID/status. Then one foreign route is added and one
# route of tunroute's deleted, to show the daemon still answers (the repair
# is checked). No packet leaves the namespaces; addresses are documentation
# or private.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
bench_init bench/daemon-idle.sh

n4=${N4:-1000000}
n6=${N6:-100000}
idle=${SECONDS_IDLE:-60}
settle=${SETTLE:-5}
ns=tr-co-idle-$$
peer=tr-co-idlep-$$
pid=
bench_on_exit 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi'

bench_build
tr=("$tmp/tunroute" --run-dir "$tmp/run")
bench_big_namespace "$ns" "$peer" "$n4" "$n6"

cp examples/lab-demo.yaml "$tmp/demo.yaml"
echo "starting tunroute run..." >&2
start=$(date +%s.%N)
"${tr[@]}" run -c "$tmp/demo.yaml" --netns "$ns" >"$tmp/log" 2>&1 &
pid=$!
until grep -q 'msg=running' "$tmp/log"; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "bench/daemon-idle.sh: tunroute run exited:" >&2
		cat "$tmp/log" >&2
		exit 1
	fi
	sleep 0.1
done
ready=$(date +%s.%N)
sleep "$settle"

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
t0=$(ticks)
w0=$(date +%s.%N)
sleep "$idle"
t1=$(ticks)
w1=$(date +%s.%N)
rss=$(kb VmRSS)
hwm=$(kb VmHWM)
status=$("${tr[@]}" status -c "$tmp/demo.yaml" --netns "$ns" 2>&1 || true)

# Still awake: a route of tunroute's deleted is put back.
ip -n "$ns" route del 0.0.0.0/1
for _ in $(seq 100); do
	ip -n "$ns" route show 0.0.0.0/1 | grep -q wg0 && break
	sleep 0.1
done
ip -n "$ns" route show 0.0.0.0/1 | grep -q wg0 || { echo "bench/daemon-idle.sh: the daemon did not repair 0.0.0.0/1:" >&2; tail -20 "$tmp/log" >&2; exit 1; }

awk -v a="$start" -v r="$ready" -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v hz="$hz" \
	-v rss="$rss" -v hwm="$hwm" -v n4="$have4" -v n6="$have6" 'BEGIN {
	cpu = (t1 - t0) / hz
	printf "main table: %d IPv4, %d IPv6 foreign routes\n", n4, n6
	printf "start to READY (first apply): %.2f s\n", r - a
	printf "idle %.1f s: CPU %.2f s = %.2f%% of one core (%d ticks of 1/%d s)\n", w1 - w0, cpu, 100 * cpu / (w1 - w0), t1 - t0, hz
	printf "RSS now %.1f MB, peak %.1f MB (VmHWM, includes the first apply)\n", rss / 1024, hwm / 1024
}'
echo "$status" | grep -E 'events|repairs|in sync|uptime' || true
echo "repair after the idle minute: $(grep -c 'msg=repaired' "$tmp/log") repair(s) logged, latency (event read to kernel ack): $(grep 'msg=repaired' "$tmp/log" | grep -o 'latency=[^ ]*' | cut -d= -f2 | paste -sd' ')"
"${tr[@]}" status -c "$tmp/demo.yaml" --netns "$ns" | grep 'route reads' || true
