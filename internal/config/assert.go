package config

import (
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// Assertion is a property the user wants `tunroute check` to prove for
// every packet it selects, in every state the tunnels can be in:
//
//	assert:
//	  - {from: 10.30.0.0/24, never_via: eth0}        # never leaves eth0
//	  - {uid: 1001, only_via: [work]}                # leaves only through work (or is dropped)
//	  - {to: 10.20.0.0/16, via: work}                # goes through work whenever work is up
//	  - {from_domain: hostile, to_domain: private, never: true}   # no packet of hostile reaches private
//
// The selection fields are those of select and killswitch.allow; the
// expectation is exactly one of never_via, only_via, via, never.
type Assertion struct {
	// Name labels the assertion in reports; default: its position.
	Name string
	// Selection.
	From   []netip.Prefix
	To     []netip.Prefix
	Proto  uint8
	Ports  []state.PortRange // destination ports
	SPorts []state.PortRange
	UID    *state.UIDRange
	Cgroup string
	// IIF selects traffic forwarded from that device; Traffic is
	// "local" (sent by this host, the default without iif), "forwarded"
	// or "all".
	IIF     string
	Traffic string
	// FromDomain and ToDomain select what a domain sends to another
	// domain's addresses (ToDomain: the addresses of its devices and pipe ends).
	FromDomain, ToDomain string

	// Expectation: exactly one is set. Names are identities or devices.
	NeverVia []string
	OnlyVia  []string
	Via      string
	Never    bool

	positions
}

var assertKeys = []string{"name", "from", "to", "proto", "port", "sport", "uid", "cgroup", "iif", "traffic",
	"from_domain", "to_domain", "never_via", "only_via", "via", "never"}

func (d *decoder) asserts(v node) error {
	return appendSeq(v, d.assertion, &d.cfg.Asserts)
}

func (d *decoder) assertion(v node) (*Assertion, error) {
	m, err := v.mapping(assertKeys...)
	if err != nil {
		return nil, err
	}
	a := &Assertion{positions: m.at, Name: v.pos.Field}
	if n, ok := m.get("name"); ok {
		if a.Name, err = n.scalar(); err != nil {
			return nil, err
		}
	}
	for _, key := range []string{"from", "to"} {
		if _, ok := m.get(key); !ok {
			continue
		}
		ps, err := prefixes(m, key)
		if err != nil {
			return nil, err
		}
		if key == "from" {
			a.From = ps
		} else {
			a.To = ps
		}
	}
	if err := protoPorts(m, &a.Proto, []keyed[[]state.PortRange]{{"port", &a.Ports}, {"sport", &a.SPorts}}); err != nil {
		return nil, err
	}
	if err := localSender(m, &a.UID, &a.Cgroup); err != nil {
		return nil, err
	}
	if err := scalarsInto(m, []keyed[string]{{"iif", &a.IIF}}, deviceScalar); err != nil {
		return nil, err
	}
	a.Traffic = "local"
	if a.IIF != "" {
		a.Traffic = "forwarded"
	}
	if n, ok := m.get("traffic"); ok {
		if a.Traffic, err = n.scalar(); err != nil {
			return nil, err
		}
		if !contains([]string{"local", "forwarded", "all"}, a.Traffic) {
			return nil, n.pos.Errorf("%q: expected local (sent by this host), forwarded or all", a.Traffic)
		}
		if a.IIF != "" && a.Traffic == "local" {
			return nil, n.pos.Errorf("iif selects forwarded traffic; it cannot go with traffic: local")
		}
	}
	if (a.UID != nil || a.Cgroup != "") && a.Traffic == "forwarded" {
		return nil, m.at("uid").Errorf("uid and cgroup select what local processes send; they cannot go with forwarded traffic")
	}
	err = scalarsInto(m, []keyed[string]{{"from_domain", &a.FromDomain}, {"to_domain", &a.ToDomain}}, func(n node, s string) (string, error) {
		if s != "host" && d.cfg.Domain(s) == nil {
			return "", n.pos.Errorf("no domain %q (host is the top level)", s)
		}
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	if (a.FromDomain == "") != (a.ToDomain == "") {
		return nil, m.at("to_domain").Errorf("from_domain and to_domain go together")
	}
	names := func(key string) ([]string, error) {
		n, _ := m.get(key)
		out, err := scalarItems(n, func(it node, s string) (string, error) {
			if d.cfg.Identity(s) == nil && checkDevice(it.pos, s) != nil {
				return s, it.pos.Errorf("%q is neither an identity nor a device name", s)
			}
			return s, nil
		})
		if err != nil {
			return nil, err
		}
		if len(out) == 0 {
			return nil, n.pos.Errorf("name at least one identity or device")
		}
		return out, nil
	}
	var given []string
	if _, ok := m.get("never_via"); ok {
		given = append(given, "never_via")
		if a.NeverVia, err = names("never_via"); err != nil {
			return nil, err
		}
	}
	if _, ok := m.get("only_via"); ok {
		given = append(given, "only_via")
		if a.OnlyVia, err = names("only_via"); err != nil {
			return nil, err
		}
	}
	if n, ok := m.get("via"); ok {
		given = append(given, "via")
		vs, err := names("via")
		if err != nil {
			return nil, err
		}
		if len(vs) != 1 {
			return nil, n.pos.Errorf("via names one identity or device (only_via takes a list)")
		}
		a.Via = vs[0]
	}
	if n, ok := m.get("never"); ok {
		if a.Never, err = boolValue(n); err != nil {
			return nil, err
		}
		if !a.Never {
			return nil, n.pos.Errorf("never: false asserts nothing; leave it out")
		}
		given = append(given, "never")
	}
	switch {
	case len(given) == 0:
		return nil, m.pos.Errorf("missing the expectation: one of never_via, only_via, via, never")
	case len(given) > 1:
		return nil, m.at(given[1]).Errorf("give one expectation, not %s", strings.Join(given, " and "))
	}
	if a.FromDomain != "" && !a.Never {
		return nil, m.at(given[0]).Errorf("from_domain/to_domain take never: true")
	}
	return a, nil
}
