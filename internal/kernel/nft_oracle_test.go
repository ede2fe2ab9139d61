package kernel

// The nftables oracle: `nft -j list table inet tunroute` parsed into the
// state model, so tests can compare what Execute wrote with an independent
// reader of the kernel (nft decodes the kernel's expressions itself).

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
)

// nftRule is a rule as nft shows it: a FwRule plus what nft shows that
// the model does not hold directly.
type nftRule struct {
	state.FwRule
	cgroupLevel int    // from the text listing: nft's JSON leaves it out
	setMarkAnd  uint32 // the & operand of `meta mark set meta mark & A | V`
	reject      string // nft's JSON of the reject statement
}

type nftChain struct {
	state.Chain
	rules []nftRule
}

var icmpv6Names = map[string]uint8{
	"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
	"echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
	"mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133, "nd-router-advert": 134,
	"nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137, "router-renumbering": 138,
	"ind-neighbor-solicit": 141, "ind-neighbor-advert": 142, "mld2-listener-report": 143,
}

var protoNames = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "sctp": 132}

// nftOracle lists tunroute's table with nft; nil if nft says it does not
// exist.
func nftOracle(t *testing.T, ns string) []nftChain {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nftIn(t, ns, "-j", "list", "table", "inet", state.FirewallTable)), &doc); err != nil {
		t.Fatal(err)
	}
	// nft's JSON leaves out the cgroupv2 level: take it from the text.
	levels := regexp.MustCompile(`socket cgroupv2 level (\d+) `).FindAllStringSubmatch(
		nftIn(t, ns, "list", "table", "inet", state.FirewallTable), -1)
	var chains []nftChain
	for _, o := range doc.Nftables {
		if raw, ok := o["chain"]; ok {
			var c struct {
				Name, Type, Hook, Policy string
				Prio                     int
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			chains = append(chains, nftChain{Chain: state.Chain{Name: c.Name, Type: c.Type, Hook: c.Hook, Priority: c.Prio, Policy: c.Policy}})
		}
		if raw, ok := o["rule"]; ok {
			var r struct {
				Chain, Comment string
				Expr           []map[string]any
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			nr := parseNftRule(t, r.Expr)
			nr.Comment = r.Comment
			if nr.Cgroup != "" {
				if len(levels) == 0 {
					t.Fatalf("no cgroupv2 level in nft's listing")
				}
				nr.cgroupLevel, _ = strconv.Atoi(levels[0][1])
				levels = levels[1:]
			}
			i := slices.IndexFunc(chains, func(c nftChain) bool { return c.Name == r.Chain })
			if i < 0 {
				t.Fatalf("rule of unknown chain %s", r.Chain)
			}
			chains[i].rules = append(chains[i].rules, nr)
		}
	}
	return chains
}

func parseNftRule(t *testing.T, stmts []map[string]any) nftRule {
	t.Helper()
	var r nftRule
	for _, st := range stmts {
		for k, v := range st {
			switch k {
			case "match":
				m := v.(map[string]any)
				nftMatch(t, &r, m["op"].(string), m["left"], m["right"])
			case "counter":
				c := v.(map[string]any)
				r.Counter = true
				r.Packets, r.Bytes = uint64(c["packets"].(float64)), uint64(c["bytes"].(float64))
			case "mangle":
				m := v.(map[string]any)
				or := m["value"].(map[string]any)["|"].([]any)
				and := or[0].(map[string]any)["&"].([]any)
				if js(m["key"]) != `{"meta":{"key":"mark"}}` || js(and[0]) != `{"meta":{"key":"mark"}}` {
					t.Fatalf("mangle %s", js(v))
				}
				r.setMarkAnd, r.SetMark = num(and[1]), num(or[1])
				r.SetMarkMask = 1 // set below from the desired rule's view; nonzero means present
			case "accept", "drop":
				r.Verdict = k
			case "reject":
				r.Verdict, r.reject = k, js(v)
				// nft leaves out `meta nfproto` that ICMP or ICMPv6 implies.
				if m, ok := v.(map[string]any); ok && r.Family == 0 {
					r.Family = map[any]int{"icmp": 4, "icmpv6": 6}[m["type"]]
				}
			case "masquerade":
				r.Masquerade = true
			default:
				t.Fatalf("statement %s: %s", k, js(v))
			}
		}
	}
	return r
}

func num(v any) uint32 {
	switch x := v.(type) {
	case float64:
		return uint32(x)
	case string:
		n, _ := strconv.ParseUint(x, 0, 64)
		return uint32(n)
	}
	return 0
}

// elems returns the elements of a match's right side (a set or one value).
func elems(v any) []any {
	if m, ok := v.(map[string]any); ok {
		if s, ok := m["set"]; ok {
			return s.([]any)
		}
	}
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func nftMatch(t *testing.T, r *nftRule, op string, left, right any) {
	t.Helper()
	neg := op == "!="
	if op != "==" && op != "!=" && op != "in" {
		t.Fatalf("match op %q", op)
	}
	l := left.(map[string]any)
	switch {
	case l["meta"] != nil:
		switch key := l["meta"].(map[string]any)["key"]; key {
		case "nfproto":
			r.Family = map[string]int{"ipv4": 4, "ipv6": 6}[right.(string)]
		case "l4proto":
			r.Proto = nftProto(t, right)
		case "iifname":
			r.IIF = nftStrings(right)
		case "oifname":
			if neg {
				r.NotOIF = nftStrings(right)
			} else {
				r.OIF = nftStrings(right)
			}
		case "skuid":
			lo, hi := nftRange(right)
			r.UID = &state.UIDRange{Start: lo, End: hi}
		default:
			t.Fatalf("meta %v", key)
		}
	case l["payload"] != nil:
		p := l["payload"].(map[string]any)
		proto, field := p["protocol"].(string), p["field"].(string)
		switch proto {
		case "ip", "ip6":
			r.Family = map[string]int{"ip": 4, "ip6": 6}[proto]
			ps := nftPrefixes(t, right)
			switch {
			case field == "saddr":
				r.Saddr = ps
			case neg:
				r.NotDaddr = ps
			default:
				r.Daddr = ps
			}
		case "th", "udp", "tcp":
			if proto != "th" {
				r.Proto = protoNames[proto]
			}
			var prs []state.PortRange
			for _, e := range elems(right) {
				lo, hi := nftRange(e)
				prs = append(prs, state.PortRange{Start: uint16(lo), End: uint16(hi)})
			}
			if field == "sport" {
				r.SPorts = prs
			} else {
				r.DPorts = prs
			}
		case "icmpv6":
			r.Family, r.Proto = 6, 58
			for _, e := range elems(right) {
				n, ok := icmpv6Names[fmt.Sprint(e)]
				if !ok {
					n = uint8(num(e))
				}
				r.ICMPv6Types = append(r.ICMPv6Types, n)
			}
		default:
			t.Fatalf("payload %s %s", proto, field)
		}
	case l["socket"] != nil:
		r.Cgroup = "?"
		r.CgroupID = uint64(num(right))
	case l["&"] != nil:
		and := l["&"].([]any)
		if js(and[0]) != `{"meta":{"key":"mark"}}` {
			t.Fatalf("match on %s", js(left))
		}
		r.MarkMask, r.Mark = num(and[1]), num(right)
	case l["ct"] != nil:
		for _, e := range elems(right) {
			r.CtState = append(r.CtState, e.(string))
		}
	default:
		t.Fatalf("match on %s", js(left))
	}
}

func nftProto(t *testing.T, v any) uint8 {
	if s, ok := v.(string); ok {
		p, ok := protoNames[s]
		if !ok {
			t.Fatalf("protocol %q", s)
		}
		return p
	}
	return uint8(num(v))
}

func nftStrings(v any) []string {
	var out []string
	for _, e := range elems(v) {
		out = append(out, e.(string))
	}
	return out
}

func nftRange(v any) (uint32, uint32) {
	if m, ok := v.(map[string]any); ok {
		if r, ok := m["range"].([]any); ok {
			return num(r[0]), num(r[1])
		}
	}
	return num(v), num(v)
}

func nftPrefixes(t *testing.T, v any) []netip.Prefix {
	var out []netip.Prefix
	for _, e := range elems(v) {
		switch x := e.(type) {
		case string:
			a := netip.MustParseAddr(x)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		case map[string]any:
			if p, ok := x["prefix"].(map[string]any); ok {
				out = append(out, netip.PrefixFrom(netip.MustParseAddr(p["addr"].(string)), int(num(p["len"]))))
				continue
			}
			if r, ok := x["range"].([]any); ok {
				lo, hi := netip.MustParseAddr(r[0].(string)), netip.MustParseAddr(r[1].(string))
				out = append(out, intervalPrefixes(interval{lo.AsSlice(), hi.AsSlice()})...)
				continue
			}
			t.Fatalf("address %s", js(x))
		}
	}
	return out
}

// canonPrefixes is what an address match holds, whatever the form given:
// sorted, overlaps merged, as prefixes.
func canonPrefixes(ps []netip.Prefix) []string {
	var ivs []interval
	for _, p := range ps {
		ivs = append(ivs, prefixInterval(p))
	}
	got, _ := elemIntervals(intervalElems(ivs))
	var out []string
	for _, iv := range got {
		for _, p := range intervalPrefixes(iv) {
			out = append(out, p.String())
		}
	}
	return out
}

func sortedStrings[T any](l []T) string {
	s := make([]string, len(l))
	for i, x := range l {
		s[i] = fmt.Sprint(x)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// compareWithNft reports every difference between the desired table and
// what nft lists, field by field; counters are compared with counts when
// that is not nil.
func compareWithNft(want *state.Firewall, got []nftChain) []string {
	var diffs []string
	d := func(format string, a ...any) { diffs = append(diffs, fmt.Sprintf(format, a...)) }
	if len(got) != len(want.Chains) {
		d("nft lists %d chains, want %d", len(got), len(want.Chains))
		return diffs
	}
	for ci, wc := range want.Chains {
		gc := got[ci]
		if gc.Chain.String() != wc.String() {
			d("chain %d: nft has %q, want %q", ci, gc.Chain.String(), wc.String())
		}
		if len(gc.rules) != len(wc.Rules) {
			d("chain %s: nft lists %d rules, want %d", wc.Name, len(gc.rules), len(wc.Rules))
			continue
		}
		for ri := range wc.Rules {
			w, g := &wc.Rules[ri], &gc.rules[ri]
			at := fmt.Sprintf("chain %s rule %d (%s)", wc.Name, ri+1, w)
			cmp := func(field string, gv, wv any) {
				if fmt.Sprint(gv) != fmt.Sprint(wv) {
					d("%s: %s: nft has %v, want %v", at, field, gv, wv)
				}
			}
			cmp("comment", g.Comment, w.Comment)
			cmp("family", g.Family, w.Family)
			cmp("iif", sortedStrings(g.IIF), sortedStrings(w.IIF))
			cmp("oif", sortedStrings(g.OIF), sortedStrings(w.OIF))
			cmp("not_oif", sortedStrings(g.NotOIF), sortedStrings(w.NotOIF))
			cmp("proto", g.Proto, w.Proto)
			cmp("sports", sortedStrings(g.SPorts), sortedStrings(w.SPorts))
			cmp("dports", sortedStrings(g.DPorts), sortedStrings(w.DPorts))
			cmp("saddr", canonPrefixes(g.Saddr), canonPrefixes(w.Saddr))
			cmp("daddr", canonPrefixes(g.Daddr), canonPrefixes(w.Daddr))
			cmp("not_daddr", canonPrefixes(g.NotDaddr), canonPrefixes(w.NotDaddr))
			cmp("uid", js(g.UID), js(w.UID))
			if w.Cgroup != "" {
				cmp("cgroup id", g.CgroupID, w.CgroupID)
				cmp("cgroup level", g.cgroupLevel, state.CgroupLevel(w.Cgroup))
			} else {
				cmp("cgroup", g.Cgroup, "")
			}
			cmp("mark", fmt.Sprintf("%#x/%#x", g.Mark, g.MarkMask), fmt.Sprintf("%#x/%#x", w.Mark, w.MarkMask))
			cmp("icmpv6_types", sortedStrings(g.ICMPv6Types), sortedStrings(w.ICMPv6Types))
			cmp("ct_state", sortedStrings(g.CtState), sortedStrings(w.CtState))
			cmp("counter", g.Counter, w.Counter)
			// (mark & A) | V sets the same mark as (mark & ^mask) | value
			// when V == value and A|V == ^mask|value.
			if w.SetMarkMask != 0 {
				cmp("set mark", fmt.Sprintf("& %#x | %#x", g.setMarkAnd|g.SetMark, g.SetMark),
					fmt.Sprintf("& %#x | %#x", ^w.SetMarkMask|w.SetMark, w.SetMark))
			} else {
				cmp("set mark", g.SetMarkMask != 0, false)
			}
			cmp("verdict", g.Verdict, w.Verdict)
			if w.Verdict == "reject" {
				want := map[int]string{0: `{"expr":"port-unreachable","type":"icmpx"}`,
					4: `{"expr":"port-unreachable","type":"icmp"}`, 6: `{"expr":"port-unreachable","type":"icmpv6"}`}[w.Family]
				cmp("reject", g.reject, want)
			}
			cmp("masquerade", g.Masquerade, w.Masquerade)
		}
	}
	return diffs
}
