#!/bin/sh
# Performance of `tunroute explain --batch` against the kernel.
#
# Builds a throw-away network namespace tr-fb-<pid> holding a full-table
# state (1,000,000 IPv4 routes with an Internet-like prefix-length mix,
# 100,000 IPv6 routes, then 1,000 rules), answers the same random queries
# with `ip -batch` of `route get` lines and with the simulator's batch path
# on the observed snapshot, and prints both rates, their ratio, the
# snapshot load time and memory per route. Then the in-process benchmark
# (no kernel) for comparison. Needs root; touches nothing outside the
# namespace, which it deletes.
#
#   sudo bench/explain.sh                 # full size (about 2-3 minutes)
#   sudo TUNROUTE_BENCH_ROUTES=100000 bench/explain.sh   # quicker
set -eu
cd "$(dirname "$0")/.."
export TUNROUTE_BENCH=1
echo "== kernel comparison (internal/fib/fibdiff TestBenchKernel)"
go test -count=1 -timeout 60m -run '^TestBenchKernel$' -v ./internal/fib/fibdiff/ | grep -E 'bench_test|^(ok|FAIL|---)'
echo "== in-process (internal/fib TestBenchReport)"
go test -count=1 -timeout 60m -run '^TestBenchReport$' -v ./internal/fib/ | grep -E 'bench_test|^(ok|FAIL|---)'
