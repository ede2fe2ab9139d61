// Package failovertest holds the failover lab: a host with two ISPs in
// network namespaces (tr-fo2-*), the real prober, and tunroute's engine
// re-planning with the prober's verdicts. Its tests need root.
package failovertest
