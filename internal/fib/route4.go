package fib

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
)

// RTCF_* route cache flags (include/uapi/linux/in_route.h).
const (
	rtcfNotify     = 0x00010000
	rtcfRedirected = 0x00040000
	rtcfDoRedirect = 0x01000000
	rtcfDirectSrc  = 0x04000000
	rtcfBroadcast  = 0x10000000
	rtcfMulticast  = 0x20000000
	rtcfLocal      = 0x80000000

	rtmFOffloadFailed = 0x20000000 // RTM_F_OFFLOAD_FAILED, printed for RTCF_MULTICAST
)

const (
	scopeUniverse = 0
	scopeLink     = 253
	scopeHost     = 254

	protoICMP   = 1
	protoIGMP   = 2
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	invalidUID = 0xffffffff
)

// selectAddr4 is inet_select_addr(dev, dst, scope).
func (f *FIB) selectAddr4(dev *link, dst uint32, scope uint8) uint32 {
	localnet := uint8(scopeHost)
	if dev.routeLocalnet {
		localnet = scopeLink
	}
	var addr uint32
	for i := range dev.a4 {
		a := &dev.a4[i]
		if a.secondary {
			continue
		}
		if min(a.scope, localnet) > scope {
			continue
		}
		if dst == 0 || (dst^a.address)&a.mask == 0 {
			return a.local
		}
		if addr == 0 {
			addr = a.local
		}
	}
	if addr != 0 {
		return addr
	}
	// Other devices in device-list order (lo first), in_dev_select_addr.
	for _, d := range f.links {
		for i := range d.a4 {
			a := &d.a4[i]
			if a.secondary {
				continue
			}
			if a.scope != scopeLink && a.scope <= scope {
				return a.local
			}
		}
	}
	return 0
}

// ipDevFind is __ip_dev_find: the device holding a local address, else
// the device of a local route covering it.
func (f *FIB) ipDevFind(a uint32, sc *scratch) *link {
	if l := f.localAddrs4[a]; l != nil {
		return l
	}
	fl := flow4{daddr: a, iif: 1}
	var res fibres4
	var err errno
	merged, _ := f.merged()
	if sc != nil && sc.forceMode != 0 {
		merged = sc.forceMode == 1
	}
	if merged {
		err = f.mergedLookup4(&fl, &res)
	} else if t := f.v4.tables[state.TableLocal]; t != nil {
		err = f.tableLookup4(t, &fl, &res, nil)
	} else {
		return nil
	}
	if err == errOK && res.typ == state.RouteLocal {
		return res.nhop().dev
	}
	return nil
}

// mcMember reports whether the host joined group g on dev. Only the
// all-hosts group is known from a snapshot.
func (f *FIB) mcMember(dev *link, g uint32, r *Result) bool {
	if g == 0xe0000001 {
		return dev.up
	}
	r.addUncertain(noteMcGroup)
	return false
}

// output4 is ip_route_output_key_hash_rcu + __mkroute_output + rt_fill_info
// for `ip route get` without iif.
func (f *FIB) output4(q *qflow, r *Result, sc *scratch) {
	tr := sc.tracer(r)
	fl := flow4{daddr: v4u(q.dst), iif: 1, mark: q.mark, uid: 0, tos: q.tos & 0xfc,
		proto: protoUDP, sport: q.sport, dport: q.dport, scope: scopeUniverse}
	if q.uidSet {
		fl.uid = q.uid
	}
	if q.protoSet {
		fl.proto = q.proto
	}
	if q.src.IsValid() {
		fl.saddr = v4u(q.src)
	}
	if q.oif != nil {
		fl.oif = int32(q.oif.index)
	}
	r.UID, r.has = fl.uid, r.has|hasUID
	var res fibres4
	res.rule = -1
	var devOut *link
	origOif := fl.oif
	var flags uint32
	tableID := uint32(0)
	lookedUp := false

	if fl.saddr != 0 {
		if isMulticast4(fl.saddr) || isLbcast4(fl.saddr) || isZeronet4(fl.saddr) {
			tr.note(nFromInvalid)
			r.fail(errINVAL)
			return
		}
		if fl.oif == 0 && (isMulticast4(fl.daddr) || isLbcast4(fl.daddr)) {
			devOut = f.ipDevFind(fl.saddr, sc)
			if devOut == nil {
				tr.note(nFromNotLocal)
				r.fail(errNETUNREACH)
				return
			}
			fl.oif = int32(devOut.index)
			tr.noteDev(nFromDev, devOut)
			goto makeRoute
		}
		if f.ipDevFind(fl.saddr, sc) == nil {
			tr.note(nFromNotLocal)
			r.fail(errNETUNREACH)
			return
		}
	}
	if fl.oif != 0 {
		devOut = q.oif
		if !devOut.up {
			tr.noteDev(nOifDown, devOut)
			r.fail(errNETUNREACH)
			return
		}
		if isLocalMulticast4(fl.daddr) || isLbcast4(fl.daddr) || fl.proto == protoIGMP {
			if fl.saddr == 0 {
				fl.saddr = f.selectAddr4(devOut, 0, scopeLink)
			}
			tr.noteDev(nOifLinkLocal, devOut)
			goto makeRoute
		}
		if fl.saddr == 0 {
			if isMulticast4(fl.daddr) {
				fl.saddr = f.selectAddr4(devOut, 0, fl.scope)
			} else if fl.daddr == 0 {
				fl.saddr = f.selectAddr4(devOut, 0, scopeHost)
			}
		}
	}
	if fl.daddr == 0 {
		fl.daddr = fl.saddr
		if fl.daddr == 0 {
			fl.daddr, fl.saddr = 0x7f000001, 0x7f000001
		}
		devOut = f.lo
		fl.oif = int32(f.lo.index)
		res.typ = state.RouteLocal
		flags |= rtcfLocal
		tr.note(nZeroDst)
		goto makeRoute
	}
	{
		err := f.fibLookup4(&fl, &res, tr, sc)
		lookedUp = true
		if err != errOK {
			r.failRoute4(&res, err) // kept only if the error stands
			res.at = nil
			res.tos = res.lastTOS
			if fl.oif != 0 {
				if fl.saddr == 0 {
					fl.saddr = f.selectAddr4(devOut, 0, scopeLink)
				}
				res.typ = state.RouteUnicast
				tr.noteDev(nOifFallback, devOut)
				r.ref = routeRef{}
				goto makeRoute
			}
			r.fail(err)
			r.failRule(f.v4.rules.list, res.rule)
			return
		}
	}
	tableID = res.tableID
	r.setRule(f, &res, false)
	if res.typ == state.RouteLocal {
		if fl.saddr == 0 {
			if res.at.prefsrc.IsValid() {
				fl.saddr = v4u(res.at.prefsrc)
			} else {
				fl.saddr = fl.daddr
			}
		}
		devOut = f.lo
		if nh := res.nhop(); nh.dev != nil {
			origOif = int32(nh.dev.index)
		}
		_ = origOif
		fl.oif = int32(devOut.index)
		flags |= rtcfLocal
		goto makeRoute
	}
	// fib_select_path
	if fl.oif == 0 {
		if len(res.at.nhs) > 1 {
			f.selectMultipath4(&fl, &res, r, fl.saddr, true, q)
		} else if res.plen == 0 && res.t.nDefault > 1 && res.typ == state.RouteUnicast {
			f.selectDefault4(&res, r)
		}
	}
	if fl.saddr == 0 {
		if res.at.prefsrc.IsValid() {
			fl.saddr = v4u(res.at.prefsrc)
		} else if nh := res.nhop(); nh.saddrAlt != nh.saddr && sc != nil {
			sc.saddrAlt4 = true
			fl.saddr = nh.saddr
			if sc.useSaddrAlt4 {
				fl.saddr = nh.saddrAlt
			}
		} else {
			fl.saddr = res.nhop().saddr
		}
	}
	devOut = res.nhop().dev
	if devOut == nil {
		devOut = f.lo
	}

makeRoute:
	typ := res.typ
	useFi := res.at != nil
	if !devOut.routeLocalnet && isLoopback4(fl.saddr) && !devOut.loopback {
		tr.note(nLoopbackSrc)
		r.fail(errINVAL)
		return
	}
	switch {
	case isLbcast4(fl.daddr):
		typ = state.RouteBroadcast
		useFi = false
	case isMulticast4(fl.daddr):
		typ = state.RouteMulticast
	case isZeronet4(fl.daddr):
		r.fail(errINVAL)
		return
	}
	if devOut.loopback {
		flags |= rtcfLocal
	}
	switch typ {
	case state.RouteBroadcast:
		flags |= rtcfBroadcast | rtcfLocal
	case state.RouteMulticast:
		flags |= rtcfMulticast | rtcfLocal
		if !f.mcMember(devOut, fl.daddr, r) {
			flags &^= rtcfLocal
		}
		if useFi && res.plen < 4 {
			useFi = false
		}
	}
	r.Type = typ
	r.Dst = q.dst // rt_fill_info prints the request's destination
	r.setDev(devOut)
	r.Table = tableID
	if lookedUp {
		r.TOS = res.tos
	}
	if fl.saddr != 0 && (!q.src.IsValid() || fl.saddr != v4u(q.src)) {
		r.PrefSrc = u4(fl.saddr)
	}
	if useFi {
		nh := res.nhop()
		if nh.gw.IsValid() && nh.useGW {
			r.Gateway = nh.gw
		}
		if nh.gwUncertain {
			r.addUncertain(UncertainGatewayScope)
		}
		r.MTU = res.at.mtu
	}
	if !useFi {
		for i := range r.Possible {
			r.Possible[i].Gateway = netip.Addr{}
		}
	}
	r.Cache, r.has = flags, r.has|hasCache
	if flags&rtcfMulticast != 0 {
		r.Flags |= rtmFOffloadFailed
	}
	if q.fibmatch {
		f.fibmatch4(&res, typ, tableID, r)
	}
}

// selectMultipath4 is fib_multipath_hash + fib_select_multipath (6.18,
// scoring version). saddr is the flow source (0 when not given).
func (f *FIB) selectMultipath4(fl *flow4, res *fibres4, r *Result, saddr uint32, output bool, q *qflow) {
	at := res.at
	if at.nhid != 0 {
		// A nexthop group picks by the hash alone
		// (nexthop_select_path_hthr): no preference for the path
		// whose source is the flow's.
		saddr = 0
	}
	resilient := at.nhgroup == state.NHGroupResilient
	policy := f.mpPolicy4
	known := f.mpSeedKnown && policy <= 2 && !resilient
	var h uint32
	if known {
		h = f.mpHash4(policy, fl, q)
	}
	choose := func(h uint32) int {
		score, sel := -1, res.nh
		for i := range at.nhs {
			nh := &at.nhs[i]
			if nh.bound == -1 || (f.mpUseNeigh && false) {
				continue
			}
			s := 0
			if saddr != 0 && nh.saddr == saddr {
				s += 2
			}
			if int64(h) <= int64(nh.bound) {
				s++
			}
			if score < s {
				sel = i
				if s == 3 || (saddr == 0 && s == 1) {
					return sel
				}
				score = s
			}
		}
		return sel
	}
	if known {
		res.nh = choose(h)
		if f.mpUseNeigh {
			r.addUncertain(noteMpNeigh)
		}
		for i := range at.nhs {
			if at.nhs[i].linkdown && at.nhs[i].dev != nil && at.nhs[i].dev.ignoreLD4 {
				r.addUncertain(noteMpStaleBounds)
				break
			}
		}
		return
	}
	// Hash unknown: collect what every hash bucket would pick (with a
	// source equal to a nexthop's preferred source, that one always wins).
	sel := -1
	r.Possible = r.Possible[:0]
	r.possibleNH = r.possibleNH[:0]
	var seen uint64
	for i := range at.nhs {
		b := at.nhs[i].bound
		if b < 0 {
			continue
		}
		c := choose(uint32(b))
		if resilient {
			c = i // the bucket table is not in the snapshot: any member
		}
		if c < 64 && seen&(1<<c) != 0 {
			continue
		}
		if c < 64 {
			seen |= 1 << c
		}
		if sel < 0 {
			sel = c
		}
		nh := &at.nhs[c]
		r.possibleNH = append(r.possibleNH, int16(c))
		p := Nexthop{Dev: linkNameOf(nh.dev), Weight: int(nh.weight)}
		if nh.gw.IsValid() && nh.useGW {
			p.Gateway = nh.gw
		}
		if output && saddr == 0 {
			if at.prefsrc.IsValid() {
				p.PrefSrc = at.prefsrc
			} else if nh.saddr != 0 {
				p.PrefSrc = u4(nh.saddr)
			}
		}
		r.Possible = append(r.Possible, p)
	}
	if sel >= 0 {
		res.nh = sel
	}
	switch {
	case len(r.Possible) > 1 && resilient:
		r.addUncertain(UncertainResilientGroup)
	case len(r.Possible) > 1:
		r.addUncertain(UncertainMultipathHash)
	default:
		r.Possible = r.Possible[:0]
	}
}

// selectDefault4 is fib_select_default with an empty neighbour cache: the
// matched route stays; the kernel would prefer a gateway whose ARP entry
// is reachable.
func (f *FIB) selectDefault4(res *fibres4, r *Result) {
	nd := &res.t.nodes[res.node]
	n := 0
	for k := 0; k < int(nd.n); k++ {
		al := res.t.alias(res.node, k)
		at := &f.v4.attrs[al.attrs]
		if at.typ == state.RouteUnicast && !at.dead && al.tos == res.tos && len(at.nhs) > 0 && at.nhs[0].gw.IsValid() && at.nhs[0].useGW {
			n++
		}
	}
	if n > 1 {
		r.addUncertain(noteDefaultNeigh)
	}
}

func linkNameOf(l *link) string {
	if l == nil {
		return ""
	}
	return l.name
}

// input4 is ip_route_input_rcu for `ip route get ... iif DEV`.
func (f *FIB) input4(q *qflow, r *Result, sc *scratch) {
	tr := sc.tracer(r)
	dev := q.iif
	daddr := v4u(q.dst)
	var saddr uint32
	if q.src.IsValid() {
		saddr = v4u(q.src)
	}
	r.setIIF(dev)
	if q.uidSet {
		r.UID, r.has = q.uid, r.has|hasUID
	}
	r.has |= hasCache
	proto := uint8(protoUDP)
	if q.protoSet {
		proto = q.proto
	}
	tos := q.tos & 0xfc

	if isMulticast4(daddr) {
		our := f.mcMember(dev, daddr, r)
		if !our {
			tr.note(nMcNotJoined)
			r.fail(errINVAL)
			return
		}
		if isMulticast4(saddr) || isLbcast4(saddr) || (isLoopback4(saddr) && !dev.routeLocalnet) {
			r.fail(errINVAL)
			return
		}
		if saddr == 0 {
			if !isLocalMulticast4(daddr) && proto != protoIGMP {
				r.fail(errINVAL)
				return
			}
		} else if !f.validateSource(saddr, 0, tos, 0, dev, q, r, sc) {
			r.fail(errINVAL)
			return
		}
		if q.fibmatch {
			r.fail(errHOSTUNREACH) // no FIB entry behind a multicast input route
			return
		}
		r.Type = state.RouteMulticast
		r.Dst = u4(daddr)
		r.setDev(f.lo)
		r.Cache = rtcfMulticast | rtcfLocal
		r.Flags |= rtmFOffloadFailed
		return
	}
	if isMulticast4(saddr) || isLbcast4(saddr) {
		tr.note(nMartianSrc)
		r.fail(errINVAL)
		return
	}
	var res fibres4
	res.rule = -1
	var fl flow4
	if isLbcast4(daddr) || (saddr == 0 && daddr == 0) {
		goto brdInput
	}
	if isZeronet4(saddr) {
		tr.note(nMartianSrc)
		r.fail(errINVAL)
		return
	}
	if isZeronet4(daddr) {
		tr.note(nMartianDst)
		r.fail(errINVAL)
		return
	}
	if isLoopback4(daddr) || isLoopback4(saddr) {
		if !dev.routeLocalnet {
			tr.note(nMartianLoopback)
			r.fail(errINVAL)
			return
		}
	}
	fl = flow4{daddr: daddr, saddr: saddr, iif: int32(dev.index), mark: q.mark, tos: tos, uid: 0}
	if f.ruleDissect4 {
		fl.proto = proto
		if proto == protoTCP || proto == protoUDP {
			fl.sport, fl.dport = q.sport, q.dport
		}
	}
	if err := f.fibLookup4(&fl, &res, tr, sc); err != errOK {
		if !dev.fwd4 {
			tr.noteDev(nNoForwarding, dev)
			err = errHOSTUNREACH
		}
		r.fail(err)
		r.failRule(f.v4.rules.list, res.rule)
		r.failRoute4(&res, err)
		return
	}
	r.setRule(f, &res, false)
	if res.typ == state.RouteBroadcast {
		if dev.bcForwarding {
			goto makeRoute
		}
		goto brdInput
	}
	if res.typ == state.RouteLocal {
		if !f.validateSource(saddr, daddr, tos, 0, dev, q, r, sc) {
			r.fail(errINVAL)
			return
		}
		f.localInput4(q, r, &res, daddr, 0)
		return
	}
	if !dev.fwd4 {
		tr.noteDev(nNoForwarding, dev)
		r.fail(errHOSTUNREACH)
		return
	}
	if res.typ != state.RouteUnicast {
		tr.note(nNotUnicast)
		r.fail(errINVAL)
		return
	}
makeRoute:
	{
		if len(res.at.nhs) > 1 {
			mfl := fl
			if f.mpPolicy4 == 1 && !f.ruleDissect4 {
				// the hash dissects the packet itself
				mfl.proto = proto
				if proto == protoTCP || proto == protoUDP {
					mfl.sport, mfl.dport = q.sport, q.dport
				} else {
					mfl.sport, mfl.dport = 0, 0
				}
			}
			f.selectMultipath4(&mfl, &res, r, 0, false, q)
		}
		if len(r.Possible) > 1 {
			// The hash is unknown and the source check depends on the
			// egress device: keep the paths that pass it.
			kept, failed := 0, 0
			for i, c := range r.possibleNH {
				nh := &res.at.nhs[c]
				if nh.dev == nil {
					failed++
					continue
				}
				if ok, _ := f.validateSourceRet(saddr, daddr, tos, int32(nh.dev.index), dev, q, nil, sc); !ok {
					failed++
					continue
				}
				r.Possible[kept], r.possibleNH[kept] = r.Possible[i], c
				kept++
			}
			r.Possible, r.possibleNH = r.Possible[:kept], r.possibleNH[:kept]
			if kept > 0 {
				res.nh = int(r.possibleNH[0])
			}
			if failed > 0 && kept > 0 {
				r.addUncertain(UncertainMultipathValidation)
			}
			if kept <= 1 {
				r.Possible = r.Possible[:0]
			}
		}
		nh := res.nhop()
		out := nh.dev
		if out == nil {
			r.fail(errINVAL)
			return
		}
		ok, direct := f.validateSourceRet(saddr, daddr, tos, int32(out.index), dev, q, r, sc)
		if !ok {
			r.fail(errINVAL)
			return
		}
		var flags uint32
		if out == dev && direct && dev.sendRedirects {
			var gw uint32
			if nh.gw.Is4() {
				gw = v4u(nh.gw)
			}
			if dev.sharedMedia || f.addrOnlink(out, saddr, gw) {
				flags |= rtcfDoRedirect
			}
		}
		r.Type = res.typ
		r.Dst = u4(daddr)
		if saddr != 0 {
			r.From = u4(saddr)
		}
		if nh.gw.IsValid() && nh.useGW {
			r.Gateway = nh.gw
		}
		if nh.gwUncertain {
			r.addUncertain(UncertainGatewayScope)
		}
		r.setDev(out)
		r.Table = res.tableID
		r.TOS = res.tos
		r.MTU = res.at.mtu
		r.Cache = flags
		if q.fibmatch {
			f.fibmatch4(&res, res.typ, res.tableID, r)
		}
		return
	}
brdInput:
	if saddr != 0 {
		if !f.validateSource(saddr, 0, tos, 0, dev, q, r, sc) {
			r.fail(errINVAL)
			return
		}
	}
	f.localInput4(q, r, &res, daddr, rtcfBroadcast)
	r.Type = state.RouteBroadcast
}

func (f *FIB) localInput4(q *qflow, r *Result, res *fibres4, daddr uint32, flags uint32) {
	r.Type = res.typ
	r.Dst = u4(daddr)
	r.setDev(f.lo)
	if res.at != nil {
		r.Table = res.tableID
		r.TOS = res.tos
	}
	r.Cache = flags | rtcfLocal
	if q.fibmatch && res.at != nil {
		f.fibmatch4(res, r.Type, res.tableID, r)
	} else if q.fibmatch {
		r.fail(errHOSTUNREACH)
	}
}

// addrOnlink is inet_addr_onlink.
func (f *FIB) addrOnlink(dev *link, a, b uint32) bool {
	for i := range dev.a4 {
		ad := &dev.a4[i]
		if (a^ad.address)&ad.mask == 0 && (b == 0 || (b^ad.address)&ad.mask == 0) {
			return true
		}
	}
	return false
}

func (f *FIB) validateSource(src, dst uint32, tos uint8, oif int32, dev *link, q *qflow, r *Result, sc *scratch) bool {
	ok, _ := f.validateSourceRet(src, dst, tos, oif, dev, q, r, sc)
	return ok
}

// validateSourceRet is fib_validate_source: ok, and whether the source is
// directly connected on dev (the kernel's return value 1).
func (f *FIB) validateSourceRet(src, dst uint32, tos uint8, oif int32, dev *link, q *qflow, r *Result, sc *scratch) (bool, bool) {
	tr := sc.tracer(r)
	rpf := dev.rpFilter
	if rpf == 0 && (int32(dev.index) != oif || !dev.sendRedirects) {
		if dev.acceptLocal {
			return true, false
		}
		merged, _ := f.merged()
		if sc != nil && sc.forceMode != 0 {
			merged = sc.forceMode == 1
		}
		if f.customLocalRoutes || !merged {
			ok, direct := f.validateFull(src, dst, tos, oif, dev, rpf, q, sc)
			if !ok {
				tr.noteAddr(nRPFail, src)
			}
			return ok, direct
		}
		if f.localAddrs4[src] != nil {
			tr.noteAddr(nLocalSource, src)
			return false, false
		}
		// The kernel skips the reverse lookup here; had a local route ever
		// been added by hand in this namespace, it would do it.
		if ok, _ := f.validateFull(src, dst, tos, oif, dev, rpf, q, sc); !ok {
			r.addUncertain(noteCustomLocal)
		}
		return true, false
	}
	ok, direct := f.validateFull(src, dst, tos, oif, dev, rpf, q, sc)
	if !ok {
		tr.noteAddr(nRPFail, src)
	}
	return ok, direct
}

// validateFull is __fib_validate_source.
func (f *FIB) validateFull(src, dst uint32, tos uint8, oif int32, dev *link, rpf int, q *qflow, sc *scratch) (bool, bool) {
	fl := flow4{daddr: src, saddr: dst, iif: oif, tos: tos, uid: 0}
	if oif == 0 {
		fl.iif = int32(f.lo.index)
	}
	if dev.srcValidMark {
		fl.mark = q.mark
	}
	if f.ruleDissect4 {
		proto := uint8(protoUDP)
		if q.protoSet {
			proto = q.proto
		}
		fl.proto = proto
		if proto == protoTCP || proto == protoUDP {
			fl.sport, fl.dport = q.dport, q.sport
		}
	}
	noAddr := len(dev.a4) == 0
	var res fibres4
	if f.fibLookup4(&fl, &res, nil, sc) != errOK {
		return rpf == 0, false
	}
	if res.typ != state.RouteUnicast {
		if res.typ != state.RouteLocal || !dev.acceptLocal {
			return false, false
		}
	}
	match := res.typ == state.RouteLocal && dev.loopback
	for i := range res.at.nhs {
		if res.at.nhs[i].dev == dev {
			match = true
		}
	}
	if match {
		return true, f.nhScopeHost(&res)
	}
	if noAddr {
		return rpf == 0, false
	}
	if rpf == 1 {
		return false, false
	}
	fl.oif = int32(dev.index)
	fl.ignoreLinkstate = true
	if f.fibLookup4(&fl, &res, nil, sc) == errOK && res.typ == state.RouteUnicast {
		return true, f.nhScopeHost(&res)
	}
	return true, false
}

// nhScopeHost reports whether the result's nexthop has scope host
// (nhc_scope >= RT_SCOPE_HOST: no gateway in use): what
// __fib_validate_source returns. An IPv6 nexthop (a gateway of the other
// family, or an IPv6 nexthop object) has scope link even without a
// gateway.
func (f *FIB) nhScopeHost(res *fibres4) bool {
	nh := res.nhop()
	if nh.gw.Is6() {
		return false
	}
	if id := res.at.nhid; id != 0 {
		if o := f.nhObjects[id]; o != nil {
			if len(o.Group) > res.nh {
				o = f.nhObjects[o.Group[res.nh].ID]
			}
			if o != nil {
				return o.Scope >= state.ScopeHost
			}
		}
	}
	return !nh.useGW
}

// fibmatch4 turns the result into the matched FIB entry (RTM_F_FIB_MATCH).
func (f *FIB) fibmatch4(res *fibres4, typ state.RouteType, tableID uint32, r *Result) {
	if res.at == nil {
		r.fail(errHOSTUNREACH)
		return
	}
	at := res.at
	r.fibMatch = true
	r.Type = typ
	r.DstPrefix = res.prefix()
	r.Dst = netip.Addr{}
	r.From = netip.Addr{}
	r.TOS = res.tos
	r.Table = tableID
	r.Protocol, r.Scope = at.proto, at.scope
	r.has |= hasProtocol | hasScope
	r.PrefSrc = at.prefsrc
	r.Metric = res.metric
	if res.metric != 0 {
		r.has |= hasMetric
	}
	r.MTU = at.mtu
	r.Gateway = netip.Addr{}
	r.setDev(nil)
	r.Flags = uint32(at.flags) & 0xff
	r.Cache = 0
	r.has &^= hasCache | hasUID
	r.setIIF(nil)
	r.Mark = 0
	r.Possible = r.Possible[:0]
	if at.nhid != 0 {
		r.NHID, r.NHInfo = at.nhid, f.nhObjects[at.nhid]
	}
	if len(at.nhs) == 1 { // a group of one path too (nexthop_num_path)
		nh := &at.nhs[0]
		r.Gateway = nh.gw
		r.setDev(nh.dev)
		r.Flags = uint32(nh.flags) & 0xff
		if nh.dead || nh.linkdown && nh.dev != nil && nh.dev.ignoreLD4 {
			r.Flags |= uint32(state.NexthopDead)
		}
		if nh.linkdown {
			r.Flags |= uint32(state.NexthopLinkdown)
		}
		return
	}
	// fib_flags of a multipath route: its linkdown bit depends on the
	// order of past link events; the dump shows it.
	r.Flags = uint32(at.flags) & 0xffff
	r.Nexthops = r.Nexthops[:0]
	for i := range at.nhs {
		nh := &at.nhs[i]
		fl := uint32(nh.flags) & 0xff
		if nh.linkdown {
			fl |= uint32(state.NexthopLinkdown)
			if nh.dev != nil && nh.dev.ignoreLD4 {
				fl |= uint32(state.NexthopDead)
			}
		}
		if nh.dead {
			fl |= uint32(state.NexthopDead)
		}
		r.Nexthops = append(r.Nexthops, Nexthop{Gateway: nh.gw, Dev: linkNameOf(nh.dev), Weight: int(nh.weight), Flags: fl})
	}
}
