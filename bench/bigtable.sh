#!/usr/bin/env bash
# Cost on a big host: tunroute's everyday commands on a namespace whose main
# table holds a full BGP table that is not tunroute's (issue "cost
# proportional to the config"). Prints figures; it is not a test. Needs root,
# go, iproute2 and /usr/bin/time.
#
#   bash bench/bigtable.sh                    # 1,000,000 IPv4 + 100,000 IPv6 foreign routes
#   N4=100000 N6=10000 bash bench/bigtable.sh # smaller
#   TUNROUTE=/path/to/tunroute bash bench/bigtable.sh   # a binary built elsewhere
#   REPEAT=3 bash bench/bigtable.sh           # best time of 3 runs per command
#   SHOW_DAEMON_LOG=1 bash bench/bigtable.sh  # and the log of tunroute run
#
# It builds, in a throw-away namespace tr-co-big-<pid> (deleted at the end,
# also when interrupted) with a peer namespace tr-co-bigp-<pid>:
#   eth0   a veth with 192.0.2.10/24 and the default route via 192.0.2.1
#          (proto static), the ISP uplink of the lab-demo config;
#   wg0    a tun device with 10.66.0.2/32 and fd00:66::2/128 (the tunnel);
#   N4 foreign IPv4 routes in main (Internet-like prefix mix outside
#          private and documentation space, via 192.0.2.1 dev eth0, proto bgp)
#          and N6 foreign IPv6 routes in main (inside 2001:db8::/32, dev eth0,
#          proto bgp), inserted with `ip -batch`.
# Then it times whole processes, wall clock and peak RSS (/usr/bin/time):
#   ipget      `ip route get 10.77.0.1`: the reference for one query
#   plan       `tunroute plan` of examples/lab-demo.yaml (changes pending)
#   apply      `tunroute apply` of it, from nothing tunroute owns
#   apply0     `tunroute apply` again: nothing to change
#   status     `tunroute status`
#   explain    `tunroute explain --netns NS 10.77.0.1` (tunroute's gateway
#              redirect route in main answers)
#   explainbgp `tunroute explain` of an address one of the BGP routes in
#              main covers
#   explain6   `tunroute explain` of an IPv6 address a BGP route covers
#              (a big IPv6 table is read: see the README)
#   hook       `tunroute hook openvpn` (script_type=up) with a config of one
#              OpenVPN connection redirecting the default route, the facts
#              changing (a new tunnel address) at every run: what OpenVPN
#              waits for at each up/down
#   hookd      the same hook with `tunroute run` working on the namespace
#              (the hook hands its call to the daemon)
#   pland      `tunroute plan` of that config with `tunroute run` working
#              on it (the daemon answers)
#   apply0d    `tunroute apply` of it, nothing to change, the daemon
#              applying
#   statusd    `tunroute status` of it, the daemon reading
#   down       `tunroute down`
# No packet leaves the namespaces; every address is documentation or private.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
bench_init bench/bigtable.sh /usr/bin/time

n4=${N4:-1000000}
n6=${N6:-100000}
repeat=${REPEAT:-1}
ns=tr-co-big-$$
peer=tr-co-bigp-$$

bench_build

bench_big_namespace "$ns" "$peer" "$n4" "$n6"

# An address of the 1000th IPv4 and of the 1000th IPv6 BGP route.
bgp4=$(sed -n '1000{s|^route add \([0-9.]*\)/.*|\1|p}' "$tmp/routes.batch")
bgp6=$(grep ':' "$tmp/routes.batch" | sed -n '1000{s|^route add \([0-9a-f:]*\)/.*|\11|p}')

cp examples/lab-demo.yaml "$tmp/demo.yaml"
cat >"$tmp/hook.yaml" <<'EOF'
vpns:
  - name: work
    type: openvpn
    servers: ["198.51.100.2:1194/udp"]
identities:
  - name: inside
    vpn: work
  - name: outside
    device: eth0
redirect:
  via: inside
EOF

hookenv=(script_type=up dev=wg0 ifconfig_netmask=255.255.255.0 route_vpn_gateway=10.8.0.1
	trusted_ip=198.51.100.2 trusted_port=1194 proto_1=udp route_net_gateway=192.0.2.1)
for ((rep = 1; rep <= repeat; rep++)); do
	echo "run $rep/$repeat..." >&2
	run ipget ip -n "$ns" route get 10.77.0.1
	run plan "${tr[@]}" plan -c "$tmp/demo.yaml" --netns "$ns"
	run apply "${tr[@]}" apply -c "$tmp/demo.yaml" --netns "$ns"
	run apply0 "${tr[@]}" apply -c "$tmp/demo.yaml" --netns "$ns"
	run status "${tr[@]}" status -c "$tmp/demo.yaml" --netns "$ns"
	run explain "${tr[@]}" explain --netns "$ns" 10.77.0.1
	grep -q 'dev wg0' "$tmp/out" || { echo "bench/bigtable.sh: explain did not go through wg0:" >&2; cat "$tmp/out" >&2; exit 1; }
	run explainbgp "${tr[@]}" explain --netns "$ns" "$bgp4"
	grep -q 'proto bgp' "$tmp/out" || { echo "bench/bigtable.sh: explain $bgp4 did not find its BGP route:" >&2; cat "$tmp/out" >&2; exit 1; }
	run explain6 "${tr[@]}" explain --netns "$ns" "$bgp6"
	run down "${tr[@]}" down -c "$tmp/demo.yaml" --netns "$ns"
	# The hook: first apply of the OpenVPN config (kill-switch-less, the
	# tunnel not up), then an up with a new tunnel address each time.
	"${tr[@]}" apply -c "$tmp/hook.yaml" --netns "$ns" >/dev/null
	ip -n "$ns" addr add 10.8.0.$((10 + rep))/24 dev wg0 # as OpenVPN does before its up script
	run hook env "${hookenv[@]}" ifconfig_local=10.8.0.$((10 + rep)) "${tr[@]}" hook openvpn -c "$tmp/hook.yaml" --netns "$ns"
	"${tr[@]}" down -c "$tmp/hook.yaml" --netns "$ns" >/dev/null
	ip -n "$ns" addr del 10.8.0.$((10 + rep))/24 dev wg0
	rm -rf "$tmp/run"
	left=$(ip -n "$ns" route show proto 116 | wc -l)
	[ "$left" = 0 ] || { echo "bench/bigtable.sh: $left routes of tunroute left after down" >&2; exit 1; }
done

# The hook again, with `tunroute run` working on the namespace: the hook
# hands its call to the daemon, whose plans read the routes from what its
# watchers keep (they do not stream the big table again).
"${tr[@]}" run -c "$tmp/hook.yaml" --netns "$ns" ${SHOW_DAEMON_LOG:+-v} >"$tmp/run.log" 2>&1 &
runpid=$!
for ((i = 0; i < 600; i++)); do
	"${tr[@]}" status -c "$tmp/hook.yaml" --netns "$ns" 2>/dev/null | grep -q 'tunroute run: up' && break
	sleep 0.1
done
for ((rep = 1; rep <= repeat + 2; rep++)); do
	ip -n "$ns" addr add 10.8.0.$((50 + rep))/24 dev wg0
	sleep 2 # the daemon's check after the last hook has read the routes again
	run hookd env "${hookenv[@]}" ifconfig_local=10.8.0.$((50 + rep)) "${tr[@]}" hook openvpn -c "$tmp/hook.yaml" --netns "$ns"
	grep -q 'tunroute:' "$tmp/out" || { echo "bench/bigtable.sh: the hook through the daemon said nothing:" >&2; cat "$tmp/out" >&2; exit 1; }
	sleep 2
	run pland "${tr[@]}" plan -c "$tmp/hook.yaml" --netns "$ns"
	run apply0d "${tr[@]}" apply -c "$tmp/hook.yaml" --netns "$ns"
	run statusd "${tr[@]}" status -c "$tmp/hook.yaml" --netns "$ns"
done
"${tr[@]}" status -c "$tmp/hook.yaml" --netns "$ns" | grep -q 'made for the commands: [1-9]' ||
	{ echo "bench/bigtable.sh: tunroute plan was not answered by the daemon" >&2; exit 1; }
"${tr[@]}" status -c "$tmp/hook.yaml" --netns "$ns" | grep -q 'VPN hooks through the daemon: [1-9]' ||
	{ echo "bench/bigtable.sh: the hooks did not go through the daemon" >&2; "${tr[@]}" status -c "$tmp/hook.yaml" --netns "$ns" >&2; exit 1; }
"${tr[@]}" status -c "$tmp/hook.yaml" --netns "$ns" | grep 'route reads' | sed 's/^ */  daemon: /' >&2 || true
kill "$runpid"
wait "$runpid" || true
grep -o 'msg=hook .*took=[^ ]*' "$tmp/run.log" | sed 's/plan=.*//; s/^/  daemon: /' >&2 || true
[ -z "${SHOW_DAEMON_LOG:-}" ] || cat "$tmp/run.log" >&2
"${tr[@]}" down -c "$tmp/hook.yaml" --netns "$ns" >/dev/null

printf '%-8s %10s %8s   %s\n' command seconds "RSS MB" "(main: $have4 IPv4, $have6 IPv6 foreign routes)"
for c in ipget plan apply apply0 status explain explainbgp explain6 hook hookd pland apply0d statusd down; do
	tv="t_$c" mv="m_$c"
	printf '%-8s %10s %8s\n' "$c" "${!tv}" "${!mv}"
done
