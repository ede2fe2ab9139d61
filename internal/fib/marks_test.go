package fib

import (
	"net/netip"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

func TestApplyMarks(t *testing.T) {
	fw := &state.Firewall{Chains: []state.Chain{
		{Name: "select_output", Type: "route", Hook: "output", Rules: []state.FwRule{
			{Proto: 6, DPorts: []state.PortRange{{Start: 22, End: 22}}, SetMark: 0x100, SetMarkMask: 0xff00},
			{Cgroup: "system.slice/backup.service", SetMark: 0x200, SetMarkMask: 0xff00},
		}},
		{Name: "other_filter", Type: "filter", Hook: "output", Rules: []state.FwRule{
			{SetMark: 0x900, SetMarkMask: 0xff00}, // not a route chain: no re-route
		}},
	}}
	to := netip.MustParseAddr("198.51.100.7")
	cases := []struct {
		name   string
		q      Query
		cgroup string
		mark   uint32
	}{
		{"ssh", Query{To: to, IPProto: 6, HasIPProto: true, DPort: 22}, "", 0x100},
		{"https", Query{To: to, IPProto: 6, HasIPProto: true, DPort: 443}, "", 0},
		{"a service's cgroup, below its slice", Query{To: to}, "system.slice/backup.service/sub", 0x200},
		{"another cgroup", Query{To: to}, "system.slice/other.service", 0},
		{"forwarded ssh", Query{To: to, IPProto: 6, HasIPProto: true, DPort: 22, IIF: "eth1"}, "", 0},
	}
	for _, c := range cases {
		q := c.q
		ApplyMarks(fw, &q, c.cgroup)
		if q.Mark != c.mark {
			t.Errorf("%s: mark 0x%x, want 0x%x", c.name, q.Mark, c.mark)
		}
	}
}
