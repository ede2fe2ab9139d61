package kernel

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
	"golang.org/x/sys/unix"
)

// Route sets and nexthop objects. A route that names its next hop by
// device and gateway makes the kernel build (and, finding an equal one,
// throw away) a fib_info with per-CPU caches for each route; one that
// names a nexthop object (RTA_NH_ID) does not, and goes in about twice as
// fast. So Execute adds the routes of a set through a nexthop object of
// tunroute's own (nh_protocol state.Proto) with the template's gateway,
// device and flags, made when first needed and removed once no route
// uses it. The object is an implementation detail: Observe reads such
// routes back as the plain routes the set asked for (NHID 0, the object's
// gateway and device), so the planner never sees it.

// setNexthopObjects turns the nexthop objects of route sets on (a
// variable so that a benchmark can compare).
var setNexthopObjects = true

// nexthopInfo is a decoded nexthop object.
type nexthopInfo struct {
	id     uint32
	family uint8
	proto  state.Protocol
	flags  uint32 // RTNH_F_*
	oif    int
	gw     netip.Addr
	// other: a group, a blackhole, an encapsulation, a master: not one
	// of tunroute's plain gateway-and-device objects.
	other bool
	// group: the object is a group of kind groupKind.
	group     bool
	groupKind state.NHGroupKind
	// obj is the whole object, for the snapshot.
	obj state.NexthopObject
}

const (
	nhaGroupType = 3  // NHA_GROUP_TYPE: 0 mpath, 1 resilient
	nhaResGroup  = 12 // NHA_RES_GROUP (nested)
)

// mine reports whether the object is one Execute makes for route sets.
func (n *nexthopInfo) mine() bool { return n.proto == state.Proto && !n.other }

func decodeNexthop(data []byte) (nexthopInfo, bool) {
	if len(data) < unix.SizeofNhmsg {
		return nexthopInfo{}, false
	}
	n := nexthopInfo{family: data[0], proto: state.Protocol(data[2]), flags: ne.Uint32(data[4:])}
	o := &n.obj
	o.Scope, o.Protocol, o.Flags = state.Scope(data[1]), n.proto, state.NexthopFlags(n.flags)
	switch data[0] {
	case unix.AF_INET:
		o.Family = 4
	case unix.AF_INET6:
		o.Family = 6
	}
	a := attrs{b: data[unix.SizeofNhmsg:]}
	for a.next() {
		switch a.typ {
		case unix.NHA_ID:
			n.id = a.u32()
			o.ID = n.id
		case unix.NHA_OIF:
			n.oif = int(a.u32())
		case unix.NHA_GATEWAY:
			n.gw = ipAddr(a.val)
			o.Gateway = n.gw
		case unix.NHA_BLACKHOLE:
			o.Blackhole = true
		case unix.NHA_GROUP:
			for b := a.val; len(b) >= 8; b = b[8:] {
				// struct nexthop_grp: id, weight-1, weight_high, reserved
				w := int(b[4]) | int(b[5])<<8
				o.Group = append(o.Group, state.GroupEntry{ID: ne.Uint32(b), Weight: w + 1})
			}
		case nhaGroupType:
			if a.u16() == 1 {
				n.groupKind = state.NHGroupResilient
			}
		case nhaResGroup:
			rp := &state.ResilientParams{}
			r := attrs{b: a.val}
			for r.next() {
				switch r.typ {
				case 1:
					rp.Buckets = r.u16()
				case 2:
					rp.IdleTimer = r.u32() / userHZ
				case 3:
					rp.UnbalancedTimer = r.u32() / userHZ
				case 4:
					if len(r.val) >= 8 {
						rp.UnbalancedTime = ne.Uint64(r.val) / userHZ
					}
				}
			}
			o.Resilient = rp
		}
		switch a.typ {
		case unix.NHA_GROUP:
			n.group = true
			n.other = true
		case unix.NHA_BLACKHOLE, unix.NHA_ENCAP, unix.NHA_ENCAP_TYPE, unix.NHA_MASTER, unix.NHA_GROUPS:
			n.other = true
		}
	}
	return n, n.id != 0
}

// dumpNexthops lists the namespace's nexthop objects. A kernel without
// them answers with an error, taken as "none".
func (c *conn) dumpNexthops() ([]nexthopInfo, error) {
	out, err := dumpAll(c, unix.RTM_GETNEXTHOP, unix.RTM_NEWNEXTHOP, unix.SizeofNhmsg, 0, nil, decodeNexthop)
	var e *Error
	if errors.As(err, &e) && (e.Errno == unix.EOPNOTSUPP || e.Errno == unix.EINVAL || e.Errno == unix.EAFNOSUPPORT) {
		return nil, nil
	}
	return out, err
}

// annotateGroups records the nexthop objects in the snapshot and, on the
// routes through a group, what kind of group it is.
func (c *conn) annotateGroups(s *state.State, d *devNames) error {
	all, err := c.dumpNexthops()
	if err != nil {
		return err
	}
	kinds := map[uint32]state.NHGroupKind{}
	for _, n := range all {
		if n.group {
			kinds[n.id] = max(n.groupKind, state.NHGroupMpath)
			n.obj.GroupKind = kinds[n.id]
			n.obj.Family = 0
		}
		if !n.mine() {
			n.obj.Dev = d.name(n.oif)
			s.NexthopObjects = append(s.NexthopObjects, n.obj)
		}
	}
	for i := range s.Routes {
		if r := &s.Routes[i]; r.NHID != 0 {
			r.NHGroup = kinds[r.NHID]
		}
	}
	for i := range s.RouteSets {
		if r := &s.RouteSets[i].Template; r.NHID != 0 {
			r.NHGroup = kinds[r.NHID]
		}
	}
	return nil
}

// setNexthops maps the ids of tunroute's own nexthop objects to them, for
// reading routes back (translate).
type setNexthops map[uint32]nexthopInfo

func (c *conn) ownNexthops() (setNexthops, error) {
	all, err := c.dumpNexthops()
	if err != nil {
		return nil, err
	}
	m := setNexthops{}
	for _, n := range all {
		if n.mine() {
			m[n.id] = n
		}
	}
	return m, nil
}

// translate turns a route through one of tunroute's nexthop objects into
// the plain route it stands for. pool provides the nexthop's memory.
func (m setNexthops) translate(r *state.Route, d *devNames, pool *nhPool) {
	if r.NHID == 0 || len(m) == 0 {
		return
	}
	n, ok := m[r.NHID]
	if !ok {
		return
	}
	r.NHID = 0
	flags := state.NexthopFlags(n.flags & unix.RTNH_F_ONLINK)
	if len(r.Nexthops) == 1 { // the compat form of the dump has the state flags
		flags |= r.Nexthops[0].Flags &^ state.NexthopOnlink
	}
	r.Flags = r.Flags&^0xff | flags
	nh := pool.take(1)
	nh[0] = state.Nexthop{Gateway: n.gw, Index: n.oif, Dev: d.name(n.oif), Flags: flags}
	r.Nexthops = nh
}

// nexthopFor returns the id of a nexthop object of tunroute's for a set's
// routes of family v6 through r's single nexthop (ifindex resolved), made
// if there is none; 0 when the set is not one for a nexthop object or the
// kernel has none.
func (x *executor) nexthopFor(r *state.Route, v6 bool, ifindex int) (uint32, error) {
	if r.Type != state.RouteUnicast || r.NHID != 0 || len(r.Nexthops) != 1 || ifindex == 0 || x.noNexthops || !setNexthopObjects {
		return 0, nil
	}
	nh := &r.Nexthops[0]
	if nh.Gateway.IsValid() && nh.Gateway.Is6() != v6 {
		return 0, nil // an IPv4 route via an IPv6 gateway: plain
	}
	fam := uint8(unix.AF_INET)
	if v6 {
		fam = unix.AF_INET6
	}
	flags := uint32((r.Flags | nh.Flags) & state.NexthopOnlink)
	want := nexthopInfo{family: fam, proto: state.Proto, flags: flags, oif: ifindex, gw: nh.Gateway}
	if x.nexthops == nil {
		all, err := x.c.dumpNexthops()
		if err != nil {
			return 0, fmt.Errorf("nexthop objects: %w", err)
		}
		x.nexthops = all
	}
	for _, n := range x.nexthops {
		if n.mine() && n.family == want.family && n.flags&unix.RTNH_F_ONLINK == flags && n.oif == ifindex && n.gw == want.gw {
			return n.id, nil
		}
	}
	id, err := x.c.newNexthop(want)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && (e.Errno == unix.EOPNOTSUPP || e.Errno == unix.EAFNOSUPPORT) {
			x.noNexthops = true // an old kernel: plain routes
			return 0, nil
		}
		return 0, fmt.Errorf("nexthop object for %s: %w", describeNexthop(want), err)
	}
	want.id = id
	x.nexthops = append(x.nexthops, want)
	x.madeNexthops = true
	return id, nil
}

func describeNexthop(n nexthopInfo) string {
	s := fmt.Sprintf("dev index %d", n.oif)
	if n.gw.IsValid() {
		s = "via " + n.gw.String() + " " + s
	}
	return s
}

// newNexthop creates a nexthop object and returns the id the kernel gave
// it (the kernel echoes the new object to its creator).
func (c *conn) newNexthop(n nexthopInfo) (uint32, error) {
	seq := c.nextSeq()
	c.enc.reset()
	off := c.enc.begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ECHO, seq)
	h := c.enc.zeros(unix.SizeofNhmsg)
	h[0] = n.family
	h[2] = uint8(n.proto)
	ne.PutUint32(h[4:], n.flags)
	c.enc.u32(unix.NHA_OIF, uint32(n.oif))
	if n.gw.IsValid() {
		c.enc.addr(unix.NHA_GATEWAY, n.gw)
	}
	c.enc.end(off)
	var id uint32
	err := c.do(seq, func(m message) error {
		if m.typ == unix.RTM_NEWNEXTHOP {
			if got, ok := decodeNexthop(m.data); ok {
				id = got.id
			}
		}
		return nil
	})
	if err == nil && id == 0 {
		err = errors.New("the kernel did not say the new object's id")
	}
	return id, err
}

// unusedNexthops deletes tunroute's nexthop objects that no route uses
// any more (deleting one that a route used would take the route with it).
// probe opens a socket in the same namespace.
func (c *conn) unusedNexthops(probe func() (*conn, error)) error {
	own, err := c.ownNexthops()
	if err != nil {
		return err
	}
	var errs []error
	for id, n := range own {
		used, err := nexthopUsed(probe, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if used {
			continue
		}
		seq := c.nextSeq()
		c.enc.reset()
		off := c.enc.begin(unix.RTM_DELNEXTHOP, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
		c.enc.zeros(unix.SizeofNhmsg)
		c.enc.u32(unix.NHA_ID, id)
		c.enc.end(off)
		if err := c.do(seq, nil); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("deleting nexthop object %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// nexthopUsed reports whether a route uses nexthop object n. The kernel
// cannot filter a dump by object, but it can by protocol and device, so
// the dump holds tunroute's routes out of n's device; it runs on a socket
// of its own (probe opens one in the same namespace) that is closed at
// the first route using n, so that a million of them are not all read.
func nexthopUsed(probe func() (*conn, error), n nexthopInfo) (bool, error) {
	for _, af := range []uint8{unix.AF_INET, unix.AF_INET6} {
		c, err := probe()
		if err != nil {
			return true, err
		}
		if !c.strict {
			c.close()
			return true, nil // cannot tell: keep it
		}
		seq := c.nextSeq()
		c.enc.reset()
		off := c.enc.begin(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
		h := c.enc.zeros(unix.SizeofRtMsg)
		h[0] = af
		h[5] = uint8(state.Proto)
		c.enc.u32(unix.RTA_OIF, uint32(n.oif))
		c.enc.end(off)
		used, err := scanDump(c, seq, func(m message) bool {
			if m.typ != unix.RTM_NEWROUTE || len(m.data) < unix.SizeofRtMsg {
				return false
			}
			a := attrs{b: m.data[unix.SizeofRtMsg:]}
			for a.next() {
				if a.typ == rtaNHID && a.u32() == n.id {
					return true
				}
			}
			return false
		})
		c.close()
		if err != nil || used {
			if err != nil {
				err = fmt.Errorf("routes using nexthop object %d: %w", n.id, err)
			}
			return true, err
		}
	}
	return false, nil
}

// scanDump sends the dump request in c.enc and reads the answers until
// one satisfies stop (true) or the dump ends (false); the caller closes
// the socket, which ends a dump cut short.
func scanDump(c *conn, seq uint32, stop func(m message) bool) (bool, error) {
	if err := c.send(c.enc.b); err != nil {
		return false, err
	}
	for {
		b, err := c.recv()
		if err != nil {
			return false, err
		}
		var found bool
		var kerr error
		done, err := forEach(b, func(m message) (bool, error) {
			if m.seq != seq {
				return false, nil
			}
			switch m.typ {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				if len(m.data) >= 4 {
					if e := parseError(m); e != nil {
						kerr = e
					}
				}
				return true, nil
			}
			found = stop(m)
			return found, nil
		})
		if err != nil {
			return false, err
		}
		if done {
			return found, kerr
		}
	}
}
