package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Health-check defaults: a dead path is detected after Down failed rounds
// (3 s at 1 s), a recovered one trusted after Up good rounds.
const (
	DefaultHealthInterval = time.Second
	DefaultHealthTimeout  = time.Second
	DefaultHealthDown     = 3
	DefaultHealthUp       = 5
)

// Health is an identity's health check: probes that leave through the
// identity (its device, its source address, its table), a round every
// Interval. The identity is down after Down consecutive rounds in which
// fewer than MinTargets targets answered within Timeout, and up again
// after Up consecutive rounds in which enough did.
type Health struct {
	Targets    []HealthTarget
	Interval   time.Duration
	Timeout    time.Duration
	Down       int
	Up         int
	MinTargets int

	positions
}

// Probe kinds.
const (
	ProbeICMP = "icmp"
	ProbeTCP  = "tcp"
	ProbeDNS  = "dns"
)

// HealthTarget is one thing a probe asks: an ICMP echo, a TCP connect to
// Port, or a DNS query to Port (53 unless given).
type HealthTarget struct {
	Kind string
	Addr netip.Addr
	Port uint16
}

func (t HealthTarget) String() string {
	if t.Kind == ProbeICMP {
		return t.Kind + " " + t.Addr.String()
	}
	return t.Kind + " " + netip.AddrPortFrom(t.Addr, t.Port).String()
}

// Group is a name that routes, the redirect and selectors can use where
// they use an identity: a failover list (the first healthy member carries
// the traffic) or a load-sharing balance (a weighted multipath route over
// the healthy members).
type Group struct {
	Name string
	// Failover lists the members in order of preference.
	Failover []string
	// FallbackClear allows a failover from a tunnel to a clear (non-tunnel)
	// member listed after it (`fallback: clear`). Without it such a list is
	// refused: the kill switch keeps dropping rather than going around the
	// tunnels silently.
	FallbackClear bool
	// Balance lists the members and their weights (1..256), in order.
	Balance []Weighted

	positions
}

// Weighted is a balance group member.
type Weighted struct {
	Identity string
	Weight   int
}

// Members are the group's identities in config order.
func (g *Group) Members() []string {
	if g.Balance == nil {
		return g.Failover
	}
	out := make([]string, len(g.Balance))
	for i, w := range g.Balance {
		out[i] = w.Identity
	}
	return out
}

// Group returns the group with the given name, or nil.
func (c *Config) Group(name string) *Group {
	return byName(c.Groups, name)
}

func (d *decoder) health(v node) (*Health, error) {
	m, err := v.mapping("targets", "interval", "timeout", "down", "up", "min_targets")
	if err != nil {
		return nil, err
	}
	h := &Health{positions: m.at, Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout,
		Down: DefaultHealthDown, Up: DefaultHealthUp, MinTargets: 1}
	n, ok := m.get("targets")
	if !ok {
		return nil, m.at("targets").Errorf("missing: list what to probe, e.g. [icmp 203.0.113.1, tcp 198.51.100.1:443, dns 10.8.0.1]")
	}
	items, err := n.list()
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, n.pos.Errorf("is empty")
	}
	seen := map[HealthTarget]bool{}
	for _, it := range items {
		s, err := targetText(it)
		if err != nil {
			return nil, err
		}
		t, err := parseHealthTarget(s)
		if err != nil {
			return nil, it.pos.Errorf("%v", err)
		}
		if seen[t] {
			return nil, it.pos.Errorf("%s is listed twice", t)
		}
		seen[t] = true
		h.Targets = append(h.Targets, t)
	}
	err = scalarsInto(m, []keyed[time.Duration]{{"interval", &h.Interval}, {"timeout", &h.Timeout}}, func(n node, s string) (time.Duration, error) {
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 10*time.Millisecond || dur > time.Hour {
			return 0, n.pos.Errorf("%q is not a duration from 10ms to 1h (e.g. 1s, 500ms)", s)
		}
		return dur, nil
	})
	if err != nil {
		return nil, err
	}
	if h.Timeout > h.Interval {
		return nil, m.at("timeout").Errorf("timeout %s is longer than interval %s: a round would start before the last one ended", h.Timeout, h.Interval)
	}
	for key, dst := range map[string]*int{"down": &h.Down, "up": &h.Up} {
		if n, ok := m.get(key); ok {
			x, err := uintValue(n, 1, 1000)
			if err != nil {
				return nil, err
			}
			*dst = int(x)
		}
	}
	if n, ok := m.get("min_targets"); ok {
		x, err := uintValue(n, 1, uint64(len(h.Targets)))
		if err != nil {
			return nil, n.pos.Errorf("needs a whole number from 1 to %d, the number of targets", len(h.Targets))
		}
		h.MinTargets = int(x)
	}
	return h, nil
}

// targetText is a target's text. Inside a flow mapping
// (`health: {targets: [tcp 198.51.100.1:443]}`) the YAML parser reads
// "tcp 198.51.100.1:443" as a key and a value: put them back together.
func targetText(n node) (string, error) {
	mv, ok := n.n.(*ast.MappingValueNode)
	if m, isMap := n.n.(*ast.MappingNode); isMap && len(m.Values) == 1 {
		mv, ok = m.Values[0], true
	}
	if ok {
		k, kok := mv.Key.(ast.ScalarNode)
		v, vok := mv.Value.(ast.ScalarNode)
		if kok && vok && mv.Value.GetToken() != nil {
			return fmt.Sprint(k.GetToken().Value) + ":" + v.GetToken().Value, nil
		}
	}
	return n.scalar()
}

// parseHealthTarget reads "icmp ADDR", "tcp ADDR:PORT" or "dns ADDR[:PORT]"
// (IPv6 with a port in brackets: "tcp [2001:db8::1]:443").
func parseHealthTarget(s string) (HealthTarget, error) {
	kind, rest, ok := strings.Cut(strings.TrimSpace(s), " ")
	rest = strings.TrimSpace(rest)
	if !ok || rest == "" {
		return HealthTarget{}, fmt.Errorf("%q: a target is a kind and an address: icmp 203.0.113.1, tcp 198.51.100.1:443, dns 10.8.0.1", s)
	}
	t := HealthTarget{Kind: kind}
	switch kind {
	case ProbeICMP:
		a, err := netip.ParseAddr(rest)
		if err != nil || a.Zone() != "" {
			return t, fmt.Errorf("%q is not an IP address (icmp takes no port)", rest)
		}
		t.Addr = a.Unmap()
	case ProbeTCP, ProbeDNS:
		if a, err := netip.ParseAddr(rest); err == nil && a.Zone() == "" {
			if kind == ProbeTCP {
				return t, fmt.Errorf("%q: a tcp target needs a port (tcp %s)", rest, netip.AddrPortFrom(a, 443))
			}
			t.Addr, t.Port = a.Unmap(), 53
			break
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return t, fmt.Errorf("%q is not ADDRESS:PORT", rest)
		}
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return t, fmt.Errorf("%q is not an IP address", host)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return t, fmt.Errorf("%q is not a port from 1 to 65535", port)
		}
		t.Addr, t.Port = a.Unmap(), uint16(p)
	default:
		return t, fmt.Errorf("unknown probe kind %q; expected icmp, tcp or dns", kind)
	}
	if !t.Addr.IsGlobalUnicast() || t.Addr.IsLinkLocalUnicast() {
		return t, fmt.Errorf("%s is not a unicast address a probe can reach", t.Addr)
	}
	return t, nil
}

func (d *decoder) groups(v node) error {
	items, err := v.seqOnly()
	if err != nil {
		return err
	}
	for _, it := range items {
		m, err := it.mapping("name", "failover", "balance", "fallback")
		if err != nil {
			return err
		}
		g := &Group{positions: m.at}
		if g.Name, err = requiredName(m); err != nil {
			return err
		}
		if d.cfg.Identity(g.Name) != nil {
			return m.at("name").Errorf("%q is already an identity; a group needs a name of its own", g.Name)
		}
		if d.cfg.Group(g.Name) != nil {
			return m.at("name").Errorf("group %q is defined twice", g.Name)
		}
		fo, hasFO := m.get("failover")
		bal, hasBal := m.get("balance")
		switch {
		case hasFO && hasBal:
			return m.at("balance").Errorf("a group is either failover or balance, not both")
		case !hasFO && !hasBal:
			return m.at("failover").Errorf("missing: give failover (identities in order of preference) or balance (identities with weights)")
		case hasFO:
			list, err := fo.list()
			if err != nil {
				return err
			}
			for _, e := range list {
				name, err := d.memberRef(e, g)
				if err != nil {
					return err
				}
				g.Failover = append(g.Failover, name)
			}
			if len(g.Failover) < 2 {
				return fo.pos.Errorf("list at least two identities to fail over between")
			}
		default:
			bm, err := bal.mapping(anyKey(bal)...)
			if err != nil {
				return err
			}
			if len(bm.keys) < 2 {
				return bal.pos.Errorf("give at least two identities with weights, e.g. {isp1: 3, isp2: 1}")
			}
			g.Balance = []Weighted{}
			for _, k := range bm.keys {
				wn := bm.values[k]
				if d.cfg.Identity(k) == nil {
					return wn.pos.Errorf("no identity %q", k)
				}
				w, err := uintValue(wn, 1, 256)
				if err != nil {
					return err
				}
				g.Balance = append(g.Balance, Weighted{Identity: k, Weight: int(w)})
			}
		}
		if n, ok := m.get("fallback"); ok {
			s, err := n.scalar()
			if err != nil {
				return err
			}
			if s != "clear" {
				return n.pos.Errorf("%q: the only fallback is clear (fail over from tunnels to a clear uplink listed after them)", s)
			}
			if g.Failover == nil {
				return n.pos.Errorf("fallback belongs to a failover group")
			}
			g.FallbackClear = true
		}
		d.cfg.Groups = append(d.cfg.Groups, g)
	}
	return nil
}

func (d *decoder) memberRef(n node, g *Group) (string, error) {
	name, err := d.identityRef(n)
	if err != nil {
		return "", err
	}
	for _, m := range g.Failover {
		if m == name {
			return "", n.pos.Errorf("%s is listed twice", name)
		}
	}
	return name, nil
}

// viaRef names the identity or group traffic goes through (routes, the
// redirect, selectors).
func (d *decoder) viaRef(n node) (string, error) {
	s, err := n.scalar()
	if err != nil {
		return "", err
	}
	if d.cfg.Group(s) != nil {
		return s, nil
	}
	return d.identityRef(n)
}

// IsTunnel reports whether the config makes the identity a tunnel: it
// comes from a vpn, the kill switch lists it, or its device is one the
// config creates.
func (c *Config) IsTunnel(name string) bool {
	id := c.Identity(name)
	if id == nil {
		return false
	}
	if id.VPN != "" {
		return true
	}
	if c.KillSwitch != nil {
		for _, t := range c.KillSwitch.Tunnels {
			if t == name {
				return true
			}
		}
	}
	for _, dv := range c.Devices {
		if dv.Name == id.Device {
			return true
		}
	}
	return false
}

// checkGroups refuses the groups that would send traffic around the
// tunnels without being told to: a failover from a tunnel to a clear
// member needs `fallback: clear`; a balance never mixes the two. It runs
// once the kill switch (which may name tunnels) is read.
func (d *decoder) checkGroups() error {
	for _, g := range d.cfg.Groups {
		if g.Failover != nil {
			tunnelSeen := ""
			for _, m := range g.Failover {
				if d.cfg.IsTunnel(m) {
					tunnelSeen = m
				} else if tunnelSeen != "" && !g.FallbackClear {
					return g.At("failover").Errorf("%s is not a tunnel: failing over from %s to it sends the traffic in clear; add `fallback: clear` if that is what you want", m, tunnelSeen)
				}
			}
			continue
		}
		var tun, clear string
		for _, w := range g.Balance {
			if d.cfg.IsTunnel(w.Identity) {
				tun = w.Identity
			} else {
				clear = w.Identity
			}
		}
		if tun != "" && clear != "" {
			return g.At("balance").Errorf("%s is a tunnel and %s is not: sharing the load between them sends part of the traffic in clear", tun, clear)
		}
	}
	return nil
}
