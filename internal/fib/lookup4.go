package fib

import (
	"net/netip"

	"github.com/tunroute/tunroute/internal/state"
)

// flow4 is the kernel's flowi4 for one lookup.
type flow4 struct {
	daddr, saddr    uint32
	iif, oif        int32
	mark, uid       uint32
	tos             uint8 // dsfield with ECN bits cleared
	proto           uint8
	sport, dport    uint16
	scope           uint8
	ignoreLinkstate bool
	kernelOnly      bool // consider only the kernel's own (address) routes
}

// fibres4 is the kernel's fib_result.
type fibres4 struct {
	t       *table4 // table holding the route
	node    int32
	alias   int32
	at      *rattrs
	nh      int // nh_sel
	plen    uint8
	typ     state.RouteType
	tableID uint32 // res->table->tb_id: the table that was looked up
	tos     uint8
	metric  uint32
	rule    int32 // rule that produced the result, -1 for the fast path
	// lastTOS is the TOS of the last successful table lookup, even a
	// suppressed one: the kernel's fib_result keeps it when the walk
	// finally fails, and route get prints it after the oif fallback.
	lastTOS uint8
}

func (r *fibres4) nhop() *nhop { return &r.at.nhs[r.nh] }

func (r *fibres4) prefix() netip.Prefix { return r.t.prefix(r.node) }

func (t *table4) prefix(node int32) netip.Prefix {
	nd := &t.nodes[node]
	return netip.PrefixFrom(u4(nd.addr), int(nd.plen))
}

func (fl *flow4) ruleFlow(rf *ruleFlow) {
	*rf = ruleFlow{iif: fl.iif, oif: fl.oif, mark: fl.mark, uid: fl.uid,
		srcLo: uint64(fl.saddr), dstLo: uint64(fl.daddr), hasSrc: true,
		tos: fl.tos, proto: fl.proto, sport: fl.sport, dport: fl.dport}
}

// tableLookup4 is fib_table_lookup: longest-prefix match with
// backtracking; at each prefix the first usable alias wins. A throw or
// error route ends the lookup with its error.
func (f *FIB) tableLookup4(t *table4, fl *flow4, res *fibres4, tr *tracer) errno {
	if t.missing || t.only && fl.daddr != t.onlyDst {
		return f.miss()
	}
	var miss leafMiss
	for node, ok := t.lookup(fl.daddr); ok; node, ok = t.parent(node) {
		if err, done := f.backtrackNode4(t, node, fl, res, t.id, &miss); done {
			return err
		}
	}
	return errAGAIN
}

// leafMiss is the trie leaf (the address) whose scan a route through a
// nexthop object ended (errMissLeaf): backtracking passes over the
// leaf's other prefixes.
type leafMiss struct {
	addr uint32
	set  bool
}

// backtrackNode4 is tryNode4 on one node of a backtracking lookup: it
// passes over a node of the leaf in miss, and records a leaf that misses.
func (f *FIB) backtrackNode4(t *table4, node int32, fl *flow4, res *fibres4, reportTable uint32, miss *leafMiss) (errno, bool) {
	addr := t.nodes[node].addr
	if miss.set && miss.addr == addr {
		return errOK, false
	}
	err, done := f.tryNode4(t, node, fl, res, reportTable)
	if err == errMissLeaf {
		*miss = leafMiss{addr, true}
	}
	return err, done
}

// tryNode4 scans the aliases of one prefix. done reports that the lookup
// ended here (with a route or an error).
func (f *FIB) tryNode4(t *table4, node int32, fl *flow4, res *fibres4, reportTable uint32) (errno, bool) {
	nd := &t.nodes[node]
	ftos := fl.tos & 0x1c
	for k := 0; k < int(nd.n); k++ {
		var al alias4
		if nd.n == 1 {
			al = t.classes[nd.class]
		} else {
			al = t.classes[t.multi[int(nd.class)+k]]
		}
		if al.tos != 0 && al.tos != ftos {
			continue
		}
		at := &f.v4.attrs[al.attrs]
		if uint8(at.scope) < fl.scope || fl.kernelOnly && at.proto != 2 {
			continue
		}
		if at.err != errOK {
			*res = fibres4{t: t, node: node, alias: int32(k), at: at, plen: nd.plen, typ: at.typ,
				tableID: reportTable, tos: al.tos, metric: al.metric, rule: res.rule, lastTOS: res.lastTOS}
			return at.err, true
		}
		if at.dead {
			continue
		}
		for i := range at.nhs {
			nh := &at.nhs[i]
			if nh.dead {
				continue
			}
			if nh.linkdown && !fl.ignoreLinkstate && nh.dev != nil && nh.dev.ignoreLD4 {
				continue
			}
			if fl.oif != 0 && (nh.dev == nil || int32(nh.dev.index) != fl.oif) {
				continue
			}
			*res = fibres4{t: t, node: node, alias: int32(k), at: at, nh: i, plen: nd.plen, typ: at.typ,
				tableID: reportTable, tos: al.tos, metric: al.metric, rule: res.rule, lastTOS: res.lastTOS}
			return errOK, true
		}
		if at.nhid != 0 {
			// A route through a nexthop object none of whose nexthops
			// suits the flow ends the scan of its trie leaf
			// (fib_table_lookup "goto miss"): the leaf holds every
			// prefix of the same address, so those are not tried; the
			// lookup backtracks to other addresses.
			return errMissLeaf, false
		}
	}
	return errOK, false
}

// mergedLookup4 is the lookup in main while local is merged into its trie
// (no IPv4 rule was ever changed): both tables' prefixes are walked
// longest first, local before main at equal length, and the result is
// reported as table main.
func (f *FIB) mergedLookup4(fl *flow4, res *fibres4) errno {
	main, local := f.v4.tables[state.TableMain], f.v4.tables[state.TableLocal]
	if main != nil && (main.missing || main.only && fl.daddr != main.onlyDst) || local != nil && local.missing {
		return f.miss()
	}
	var nm, nl int32
	okm, okl := false, false
	if main != nil {
		nm, okm = main.lookup(fl.daddr)
	}
	if local != nil {
		nl, okl = local.lookup(fl.daddr)
	}
	var miss leafMiss
	for okm || okl {
		useLocal := okl && (!okm || local.nodes[nl].plen >= main.nodes[nm].plen)
		if useLocal {
			if err, done := f.backtrackNode4(local, nl, fl, res, state.TableMain, &miss); done {
				return err
			}
			nl, okl = local.parent(nl)
		} else {
			if err, done := f.backtrackNode4(main, nm, fl, res, state.TableMain, &miss); done {
				return err
			}
			nm, okm = main.parent(nm)
		}
	}
	return errAGAIN
}

// merged reports whether IPv4 lookups use the fast path with local merged
// into main, and whether that is known rather than assumed.
func (f *FIB) merged() (merged, known bool) {
	if !f.v4.rules.dflt {
		return false, true
	}
	if f.rulesModified != nil {
		return !*f.rulesModified, true
	}
	return true, false
}

// fibLookup4 is fib_lookup: the fast path while rules were never changed,
// else the rule walk. mode forces merged (1) or unmerged (2); 0 uses the
// snapshot's answer.
func (f *FIB) fibLookup4(fl *flow4, res *fibres4, tr *tracer, sc *scratch) errno {
	merged, _ := f.merged()
	if sc != nil && sc.forceMode != 0 {
		merged = sc.forceMode == 1
	}
	res.rule = -1
	if merged {
		err := f.mergedLookup4(fl, res)
		if err == errOK {
			res.lastTOS = res.tos
		}
		tr.table(state.TableMain, err, res, true)
		if err != errAGAIN {
			return err
		}
		if t := f.v4.tables[state.TableDefault]; t != nil {
			err = f.tableLookup4(t, fl, res, tr)
			if err == errOK {
				res.lastTOS = res.tos
			}
			tr.table(state.TableDefault, err, res, false)
		} else {
			tr.table(state.TableDefault, errAGAIN, nil, false)
		}
		if err == errAGAIN {
			err = errNETUNREACH
		}
		return err
	}
	return f.ruleWalk4(fl, res, tr, sc)
}

// ruleWalk4 is fib_rules_lookup over the IPv4 rules.
func (f *FIB) ruleWalk4(fl *flow4, res *fibres4, tr *tracer, sc *scratch) errno {
	var rf ruleFlow
	fl.ruleFlow(&rf)
	rule, err := f.v4.rules.walk(f, &rf, sc, tr, false, func(i int32, r *crule) (errno, bool) {
		res.rule = i
		res.at = nil
		last := res.lastTOS
		err := f.tableLookup4(r.t4, fl, res, tr)
		if err == errOK {
			last = res.tos
		}
		res.lastTOS = last
		switch err {
		case errOK:
			v := r.suppressed(int(res.plen), res.at.nhs[0].dev)
			tr.rule(i, r, v, r.table, res)
			return errOK, v == vRoute
		case errAGAIN:
			if res.at != nil && res.rule == i && res.typ == state.RouteThrow && res.t == r.t4 {
				tr.rule(i, r, vThrow, r.table, res)
			} else {
				tr.rule(i, r, vNoRoute, r.table, nil)
			}
			res.at = nil
			res.rule = -1
			return err, false
		}
		tr.rule(i, r, vErrorRoute, r.table, res)
		return err, true
	})
	res.rule = rule
	return err
}
