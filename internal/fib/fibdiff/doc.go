// Package fibdiff holds the tests of package fib against the running
// kernel (root only; everything happens in throw-away network namespaces
// named tr-fx-*, tr-fb-*, deleted afterwards):
//
//   - TestDifferential: random routing states (veth pairs created inside
//     the namespace, links up and down, IPv4 and IPv6 addresses, routes of
//     every type in several tables, rules with every selector and action,
//     sysctls, multipath seeds), random queries answered by
//     `ip -j -d route get` (through `ip -batch`) and by fib.Lookup on the
//     observed state and on the state after a JSON round trip. Every
//     disagreement fails with its seed; the first is reduced to a minimal
//     setup by delta debugging. TUNROUTE_DIFF_QUERIES (default 4000),
//     TUNROUTE_DIFF_SEED, TUNROUTE_DIFF_STATES, TUNROUTE_DIFF_NOMIN; TUNROUTE_DIFF_MEASURE=1 runs
//     every query however many disagree and prints the agreement by family.
//   - TestKernelCases: the disagreements found so far whose cause is in
//     what only a kernel snapshot holds (nexthop objects, IPv6 multipath
//     members with their own src and pref, rule history), reduced to
//     small setups in testdata/kernelcases.txt, checked against the
//     running kernel and against the recorded answers; TUNROUTE_RECORD=1
//     rewrites the answers and the observed snapshots
//     (testdata/kernelcases/NN.json).
//   - TestKernelCasesRecorded: the same cases on the recorded snapshots,
//     without root.
//   - TestBenchKernel: explain's performance comparison with the kernel, run by
//     bench/explain.sh (TUNROUTE_BENCH=1).
//
// It is a separate package so that fib's own tests never depend on
// internal/kernel.
//
//	sudo go test ./internal/fib/fibdiff/
//	sudo TUNROUTE_DIFF_QUERIES=200000 go test ./internal/fib/fibdiff/
package fibdiff
