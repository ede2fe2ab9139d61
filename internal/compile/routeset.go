package compile

import (
	"net/netip"
	"slices"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/prefixkey"
	"github.com/tunroute/tunroute/internal/state"
)

// destKey is a (table, destination) key without pointers.
type destKey = prefixkey.Dest

var keyOf = prefixkey.DestOf

// routeSet compiles a route list read from a file into one compact set per
// family: the routes share everything but their destination.
func (c *compiler) routeSet(cr *config.Route) error {
	for _, v6 := range []bool{false, true} {
		var tmpl state.Route
		if cr.Type == state.RouteUnicast {
			id := c.ids[cr.Via]
			if id.Down {
				c.note("routes from %s: identity %s is down; not installed", cr.File, id.Name)
				return nil
			}
			src, _ := id.addr(v6)
			if !id.has(v6) {
				if hasFamily(cr.To, v6) {
					return cr.At("via").Errorf("identity %s has no IPv%d address for the IPv%d prefixes of %s", id.Name, fam(v6), fam(v6), cr.File)
				}
				continue
			}
			tmpl, _ = c.throughRoute(id, anyPrefix(v6), src, cr.Table)
		} else {
			tmpl = state.Route{Table: cr.Table, Type: cr.Type, Protocol: state.Proto}
			if v6 {
				tmpl.Metric = ipv6DefaultMetric
			}
		}
		if cr.Metric != 0 {
			tmpl.Metric = cr.Metric
		}
		tmpl.Dst = netip.Prefix{}
		set := state.RouteSet{Template: tmpl}
		at := cr.At("to_file")
		if c.setKeys == nil {
			c.setKeys = map[destKey]int32{}
		}
		c.setPos = append(c.setPos, at)
		// Only an explicit route of the same table and metric can clash.
		explicit := false
		for k := range c.routes {
			if k.Table == tmpl.Table && k.Metric == tmpl.Metric {
				explicit = true
				break
			}
		}
		c.setMetric = append(c.setMetric, tmpl.Metric)
		list := uint64(len(c.setPos) - 1)
		n := 0
		for _, p := range cr.To {
			if p.Addr().Is6() == v6 {
				n++
			}
		}
		if n == len(cr.To) {
			// A list of one family is the set's destinations as it is
			// (capacity capped: an append cannot write into the list).
			set.Dsts = cr.To[:n:n]
		} else {
			set.Dsts = make([]netip.Prefix, 0, n)
		}
		if !v6 {
			c.set4 = slices.Grow(c.set4, n)
		}
		for _, p := range cr.To {
			if p.Addr().Is6() != v6 {
				continue
			}
			// IPv4 destinations are checked all at once at the end
			// (checkLists): a sorted slice beats a map of a million.
			if k, ok := prefixkey.Pack4(tmpl.Table, p); ok {
				c.set4 = append(c.set4, prefixkey.Keyed{K: k, V: list})
			} else if err := c.claim(tmpl.Table, tmpl.Metric, p, at, explicit); err != nil {
				return err
			}
			if n != len(cr.To) {
				set.Dsts = append(set.Dsts, p)
			}
		}
		if len(set.Dsts) > 0 {
			c.res.State.RouteSets = append(c.res.State.RouteSets, set)
		}
	}
	return nil
}

// claim records that a route set owns (table, dst) for the list whose
// position routeSet appended last to setPos; a second claim, or an
// explicit route at the same place (checked when explicit says one of the
// same table and metric exists), is a config error.
func (c *compiler) claim(table, metric uint32, p netip.Prefix, at config.Pos, explicit bool) error {
	k := keyOf(table, p)
	if prevI, dup := c.setKeys[k]; dup {
		prev := c.setPos[prevI]
		return at.Errorf("%s in table %s is listed twice (also by %s)", p, state.TableName(table), prev.Field)
	}
	if explicit {
		if prev, dup := c.routes[state.RouteKey{Table: table, Dst: p, Metric: metric}]; dup {
			return at.Errorf("%s in table %s is also made by %s", p, state.TableName(table), prev.Field)
		}
	}
	c.setKeys[k] = int32(len(c.setPos) - 1)
	return nil
}

// checkLists finds what the IPv4 route lists claim twice, or what an
// explicit route of the same table and metric also makes.
func (c *compiler) checkLists() error {
	if len(c.set4) == 0 {
		return nil
	}
	prefixkey.Sort(c.set4)
	for i := 1; i < len(c.set4); i++ {
		if a, b := c.set4[i-1], c.set4[i]; a.K == b.K {
			table, p := unpack4(b.K)
			return c.setPos[b.V].Errorf("%s in table %s is listed twice (also by %s)", p, state.TableName(table), c.setPos[a.V].Field)
		}
	}
	for k, at := range c.routes {
		pk, ok := prefixkey.Pack4(k.Table, k.Dst)
		if !ok || k.TOS != 0 {
			continue
		}
		if i, found := prefixkey.Search(c.set4, pk); found && c.setMetric[c.set4[i].V] == k.Metric {
			return at.Errorf("route %s in table %s is also made by the list of %s", k.Dst, state.TableName(k.Table), c.setPos[c.set4[i].V].Field)
		}
	}
	return nil
}

func unpack4(k uint64) (uint32, netip.Prefix) {
	a := netip.AddrFrom4([4]byte{byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8)})
	return uint32(k >> 40), netip.PrefixFrom(a, int(k&0xff))
}

func hasFamily(ps []netip.Prefix, v6 bool) bool {
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}
