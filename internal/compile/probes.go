package compile

import (
	"math/bits"
	"net/netip"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// ProbePriorityBase is the rule priority of the first identity's probe
// rule: before every other rule of tunroute's (local's 500, selectors'
// 4000, identities' 5000), so nothing can send a probe another way.
const ProbePriorityBase = 400

// Probe is an identity's health check as the prober must run it: each
// probe socket is bound to Device (SO_BINDTODEVICE) and to the source
// address of its family, and carries Mark (SO_MARK), which a rule sends
// to the identity's Table. The probe can only leave through the identity
// it tests, whatever the other tables say, and the kill switch lets
// exactly these packets out.
type Probe struct {
	Identity string
	// Netns is the namespace the identity lives in (its state's
	// namespace: a routing domain's, or the one tunroute works on).
	Netns  string `json:",omitempty"`
	Device string
	// Source4 and Source6 are the identity's addresses (invalid if it has
	// none of the family).
	Source4, Source6 netip.Addr
	Mark, Mask       uint32
	Table            uint32
	Health           config.Health
}

// Source returns the probe's source address for a target.
func (p *Probe) Source(target netip.Addr) netip.Addr {
	if target.Is6() {
		return p.Source6
	}
	return p.Source4
}

// probes emits, for each identity with a health check that is up, the
// rule `fwmark MARK/MASK lookup TABLE` and the Probe the prober runs.
// Marks count down from the top of the mark mask; selectors' count up.
func (c *compiler) probes() error {
	mask := c.cfg.MarkMask
	shift := bits.TrailingZeros32(mask)
	top := uint64(mask >> shift)
	n := 0
	for i, ci := range c.cfg.Identities {
		if ci.Health == nil {
			continue
		}
		id := &c.res.Identities[i]
		value := top - uint64(n)
		if value <= uint64(len(c.cfg.Select)) {
			return ci.Health.At("targets").Errorf("the health checks and selectors need more marks than mark mask 0x%08x holds; widen settings.mark_mask", mask)
		}
		prio := ProbePriorityBase + uint32(n)
		n++
		if id.Down {
			continue
		}
		p := Probe{Identity: id.Name, Netns: c.res.State.Namespace, Device: id.Device, Mark: uint32(value << shift), Mask: mask, Table: id.Table, Health: *ci.Health}
		p.Source4, _ = id.addr(false)
		p.Source6, _ = id.addr(true)
		for _, t := range ci.Health.Targets {
			if !p.Source(t.Addr).IsValid() {
				return ci.Health.At("targets").Errorf("%s: identity %s has no IPv%d address to probe from", t, id.Name, family(t.Addr))
			}
		}
		for _, v6 := range []bool{false, true} {
			if !id.has(v6) || !probesFamily(ci.Health, v6) {
				continue
			}
			r := state.NewRule(fam(v6))
			r.Priority, r.Mark, r.Mask, r.Table, r.Protocol = prio, p.Mark, p.Mask, id.Table, state.Proto
			c.res.State.Rules = append(c.res.State.Rules, r)
		}
		c.res.Probes = append(c.res.Probes, p)
	}
	return nil
}

func probesFamily(h *config.Health, v6 bool) bool {
	for _, t := range h.Targets {
		if t.Addr.Is6() == v6 {
			return true
		}
	}
	return false
}

// probeRules let exactly the probes through the kill switch: out of the
// identity's device, from its address, with its mark, to a target, by the
// target's protocol and port.
func (c *compiler) probeRules() []state.FwRule {
	var out []state.FwRule
	for _, p := range c.res.Probes {
		for _, t := range p.Health.Targets {
			src := p.Source(t.Addr)
			r := state.FwRule{Comment: "health probe of " + p.Identity + ": " + t.String(), Family: family(t.Addr),
				OIF: []string{p.Device}, Saddr: []netip.Prefix{netip.PrefixFrom(src, src.BitLen())},
				Daddr: []netip.Prefix{netip.PrefixFrom(t.Addr, t.Addr.BitLen())},
				Mark:  p.Mark, MarkMask: p.Mask, Verdict: "accept"}
			switch t.Kind {
			case config.ProbeICMP:
				if t.Addr.Is6() {
					r.Proto, r.ICMPv6Types = 58, []uint8{128}
				} else {
					r.Proto = 1
				}
			case config.ProbeTCP:
				r.Proto, r.DPorts = 6, []state.PortRange{{Start: t.Port, End: t.Port}}
			case config.ProbeDNS:
				r.Proto, r.DPorts = 17, []state.PortRange{{Start: t.Port, End: t.Port}}
			}
			out = append(out, r)
		}
	}
	return out
}
