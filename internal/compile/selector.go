package compile

import (
	"math/bits"
	"net/netip"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/state"
)

// Chains of tunroute's firewall table.
const (
	ChainSelectOutput = "select_output"
	ChainSelectNAT    = "select_nat"
	ChainKillPost     = "killswitch_postrouting"
	ChainKillForward  = "killswitch_forward"
)

// selector sends matching traffic to the identity's table. Protocol,
// ports, uid, source, destination and input device are rule selectors
// the kernel has (`ip rule ... ipproto tcp dport 23 lookup T`); a cgroup
// is not, so its traffic is marked in a route-type output chain (which
// re-routes the packet after the mark) and selected with `fwmark`; since
// its source address was chosen before the mark, it is masqueraded to the
// identity's device address.
func (c *compiler) selector(s *config.Selector, index int) error {
	id := c.ids[s.Via]
	if id.Down {
		c.note("select[%d]: identity %s is down; its traffic takes the other rules (the kill switch, if any, holds)", index, id.Name)
		return nil
	}
	prio := c.cfg.SelectPriorityBase + uint32(index)
	var mark, mask uint32
	if s.Cgroup != "" {
		var err error
		if mark, mask, err = c.selectorMark(s, index); err != nil {
			return err
		}
	}
	for _, v6 := range []bool{false, true} {
		if !id.has(v6) {
			continue
		}
		froms, tos := familyOf(s.From, v6), familyOf(s.To, v6)
		if (len(s.From) > 0 && len(froms) == 0) || (len(s.To) > 0 && len(tos) == 0) {
			continue // the selector names addresses of the other family only
		}
		if len(froms) == 0 {
			froms = []netip.Prefix{{}}
		}
		if len(tos) == 0 {
			tos = []netip.Prefix{{}}
		}
		for _, from := range froms {
			for _, to := range tos {
				r := state.NewRule(fam(v6))
				r.Priority, r.Table, r.Protocol = prio, id.Table, state.Proto
				r.Src, r.Dst, r.IIF = from, to, s.IIF
				r.IPProto, r.SPort, r.DPort, r.UID = s.Proto, s.SPort, s.DPort, s.UID
				r.Mark, r.Mask = mark, mask
				c.res.State.Rules = append(c.res.State.Rules, r)
			}
		}
		if s.Cgroup != "" {
			c.cgroupRules(s, id, v6, mark, mask)
		}
	}
	return nil
}

// selectorMark gives the index-th selector its own value inside the mark
// mask: 1, 2, 3... shifted to the mask's lowest bit.
func (c *compiler) selectorMark(s *config.Selector, index int) (uint32, uint32, error) {
	mask := c.cfg.MarkMask
	shift := bits.TrailingZeros32(mask)
	value := uint64(index+1) << shift
	if value&^uint64(mask) != 0 {
		return 0, 0, s.At("cgroup").Errorf("selector %d does not fit in mark mask 0x%08x; widen settings.mark_mask", index, mask)
	}
	return uint32(value), mask, nil
}

func (c *compiler) cgroupRules(s *config.Selector, id *Identity, v6 bool, mark, mask uint32) {
	fw := c.firewall()
	mangle := fw.chain(ChainSelectOutput, "route", "output", -150)
	mangle.Rules = append(mangle.Rules, state.FwRule{
		Comment: "select: cgroup " + s.Cgroup + " via " + id.Name, Family: fam(v6), Cgroup: s.Cgroup,
		Proto: s.Proto, SPorts: ports(s.SPort), DPorts: ports(s.DPort), Daddr: familyOf(s.To, v6),
		SetMark: mark, SetMarkMask: mask,
	})
	nat := fw.chain(ChainSelectNAT, "nat", "postrouting", 100)
	nat.Rules = append(nat.Rules, state.FwRule{
		Comment: "select: source of re-routed cgroup " + s.Cgroup + " traffic", Family: fam(v6),
		OIF: []string{id.Device}, Mark: mark, MarkMask: mask, Masquerade: true,
	})
}

func ports(p *state.PortRange) []state.PortRange {
	if p == nil {
		return nil
	}
	return []state.PortRange{*p}
}

// fwBuilder builds tunroute's table chain by chain.
type fwBuilder struct{ fw *state.Firewall }

func (c *compiler) firewall() fwBuilder {
	if c.res.State.Firewall == nil {
		c.res.State.Firewall = &state.Firewall{}
	}
	return fwBuilder{c.res.State.Firewall}
}

// chain returns the named chain, creating it (policy accept) if needed.
// The pointer is good until the next chain is created.
func (b fwBuilder) chain(name, typ, hook string, prio int) *state.Chain {
	for i := range b.fw.Chains {
		if b.fw.Chains[i].Name == name {
			return &b.fw.Chains[i]
		}
	}
	b.fw.Chains = append(b.fw.Chains, state.Chain{Name: name, Type: typ, Hook: hook, Priority: prio, Policy: "accept"})
	return &b.fw.Chains[len(b.fw.Chains)-1]
}

// familyOf keeps the prefixes of one family.
var familyOf = state.PrefixesOfFamily
