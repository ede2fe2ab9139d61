package verify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/nfteval"
	"github.com/tunroute/tunroute/internal/state"
)

// Packet is one concrete packet: what a counterexample shows.
type Packet struct {
	Family int // 4 or 6
	// IIF is the device a forwarded packet came in on; "" for traffic
	// this host generates.
	IIF string
	// Src is the source address; invalid for a socket that did not bind
	// one (the route then chooses it).
	Src      netip.Addr
	Dst      netip.Addr
	Proto    uint8
	SPort    uint16
	DPort    uint16
	ICMPType uint8
	// UID, Cgroup and Mark are the sending socket's (local traffic).
	UID    uint32
	Cgroup string
	Mark   uint32
}

// Forwarded reports whether the packet came in from another host.
func (p *Packet) Forwarded() bool { return p.IIF != "" }

// hasPorts: protocols whose header starts with ports.
func hasPorts(proto uint8) bool {
	return proto == 6 || proto == 17 || proto == 132 || proto == 33 || proto == 136
}

// ExplainArgs are the words of `tunroute explain` for this packet.
func (p *Packet) ExplainArgs() []string {
	w := []string{"to", p.Dst.String()}
	if p.Src.IsValid() {
		w = append(w, "from", p.Src.String())
	}
	if p.IIF != "" {
		w = append(w, "iif", p.IIF)
	}
	if p.Mark != 0 {
		w = append(w, "mark", fmt.Sprintf("0x%x", p.Mark))
	}
	w = append(w, "ipproto", protoName(p.Proto))
	if hasPorts(p.Proto) {
		w = append(w, "sport", fmt.Sprint(p.SPort), "dport", fmt.Sprint(p.DPort))
	}
	if !p.Forwarded() {
		w = append(w, "uid", fmt.Sprint(p.UID))
		if p.Cgroup != "" {
			w = append(w, "cgroup", p.Cgroup)
		}
	}
	return w
}

// String describes the packet in a line.
func (p *Packet) String() string {
	var b strings.Builder
	switch {
	case p.Proto == 1 && p.ICMPType == 8 || p.Proto == 58 && p.ICMPType == 128:
		b.WriteString("ICMP echo")
	case p.Proto == 1 || p.Proto == 58:
		fmt.Fprintf(&b, "ICMP type %d", p.ICMPType)
	case hasPorts(p.Proto):
		fmt.Fprintf(&b, "%s %d->%d", strings.ToUpper(protoName(p.Proto)), p.SPort, p.DPort)
	default:
		fmt.Fprintf(&b, "ipproto %s", protoName(p.Proto))
	}
	src := "(unbound)"
	if p.Src.IsValid() {
		src = p.Src.String()
	}
	fmt.Fprintf(&b, " from %s to %s", src, p.Dst)
	if p.Forwarded() {
		fmt.Fprintf(&b, ", forwarded from %s", p.IIF)
	} else {
		fmt.Fprintf(&b, ", sent by uid %d", p.UID)
		if p.Cgroup != "" {
			fmt.Fprintf(&b, " in cgroup %s", p.Cgroup)
		}
	}
	if p.Mark != 0 {
		fmt.Fprintf(&b, ", mark 0x%x", p.Mark)
	}
	return b.String()
}

// protoName names a layer 4 protocol as nft and the config do.
var protoName = state.ProtoName4

// FateKind says what happens to a packet.
type FateKind uint8

const (
	// Out: it leaves by a device (Fate.Dev).
	Out FateKind = iota
	// Local: it is delivered to this host.
	Local
	// Dropped by the firewall (Fate.Reason: the rule's comment).
	Dropped
	// Refused by routing: a blackhole, unreachable or prohibit route or
	// rule, no route, or an invalid source (Fate.Reason: the kernel's error).
	Refused
)

// Fate is what happens to a packet.
type Fate struct {
	Kind   FateKind
	Dev    string
	Tunnel bool
	Reason string
}

func (f Fate) String() string {
	switch f.Kind {
	case Out:
		if f.Tunnel {
			return "leaves by " + f.Dev + " (tunnel)"
		}
		return "leaves by " + f.Dev + " in clear"
	case Local:
		return "delivered to this host"
	case Dropped:
		return "dropped by the firewall (" + f.Reason + ")"
	}
	return "refused by routing (" + f.Reason + ")"
}

// Clear reports whether the packet leaves by a device that is not a
// tunnel (loopback is not leaving).
func (f Fate) Clear() bool { return f.Kind == Out && !f.Tunnel && f.Dev != "lo" }

// evaluator decides the fate of concrete packets in one state.
type evaluator struct {
	st      *state.State
	fib     *fib.FIB
	tunnels map[string]bool
	// l4Rules: some rule selects by ipproto or ports; other holds the
	// FIBs for protocols the route query cannot name (otherproto.go).
	l4Rules bool
	other   map[otherKey]*fib.FIB
	// route answers the routing question: internal/fib, or the kernel
	// when confirming a counterexample.
	route func(q fib.Query, p *Packet) routeAnswer
	res   fib.Result
}

// routeAnswer is what the routing decision says of one packet.
type routeAnswer struct {
	err   string // the kernel's message; "" when routed
	typ   state.RouteType
	local bool
	dev   string
	src   netip.Addr
}

func newEvaluator(st *state.State, tunnels []string) (*evaluator, error) {
	f, err := fib.New(st)
	if err != nil {
		return nil, err
	}
	e := &evaluator{st: st, fib: f, other: map[otherKey]*fib.FIB{}}
	e.setTunnels(tunnels)
	for _, r := range st.Rules {
		if r.IPProto != 0 || r.SPort != nil || r.DPort != nil {
			e.l4Rules = true
		}
	}
	e.route = func(q fib.Query, p *Packet) routeAnswer {
		r := e.lookup(q, p)
		if !r.OK() {
			return routeAnswer{err: r.Error}
		}
		a := routeAnswer{typ: r.Type, local: r.Type == state.RouteLocal, dev: r.Dev, src: r.PrefSrc}
		// An IPv6 route that finds no source answers "from ::", the
		// query's own: the kernel has no source to give the packet (ip
		// route get prints none; a send fails), so the firewall sees
		// none either, not the unspecified address DAD and MLD use.
		if !a.src.IsValid() && !(r.From.Is6() && r.From.IsUnspecified()) {
			a.src = r.From
		}
		return a
	}
	return e, nil
}

func (e *evaluator) setTunnels(tunnels []string) {
	e.tunnels = map[string]bool{}
	for _, t := range tunnels {
		e.tunnels[t] = true
	}
}

func (e *evaluator) out(dev string) Fate {
	if dev == "lo" {
		return Fate{Kind: Local, Dev: dev}
	}
	return Fate{Kind: Out, Dev: dev, Tunnel: e.tunnels[dev]}
}

// fate runs p through the host: routing (internal/fib) and tunroute's
// firewall (internal/nfteval), the way the kernel does for a local or a
// forwarded packet.
func (e *evaluator) fate(p *Packet) Fate {
	f, _ := e.fateSrc(p)
	return f
}

// fateSrc also returns the source address the packet leaves with (before
// any NAT): the bound one, or the one its route chose.
func (e *evaluator) fateSrc(p *Packet) (Fate, netip.Addr) {
	fw := e.st.Firewall
	q := fib.Query{To: p.Dst, Mark: p.Mark, IPProto: p.Proto, HasIPProto: true}
	if hasPorts(p.Proto) {
		q.SPort, q.DPort = p.SPort, p.DPort
	}
	if p.Src.IsValid() {
		q.From = p.Src
	}
	np := nfteval.Packet{Family: p.Family, Src: p.Src, Dst: p.Dst, Proto: p.Proto, SPort: p.SPort,
		DPort: p.DPort, ICMPType: p.ICMPType, Mark: p.Mark}
	hostShape(p, &np)
	drop := func(v nfteval.Verdict) (Fate, netip.Addr) { return Fate{Kind: Dropped, Reason: v.Reason()}, np.Src }
	if p.Forwarded() {
		q.IIF, np.IIF = p.IIF, p.IIF
		if v := nfteval.Hook(fw, "prerouting", np); v.Drop {
			return drop(v)
		}
		r := e.route(q, p)
		if r.err != "" {
			return Fate{Kind: Refused, Reason: r.err}, np.Src
		}
		if r.local || r.typ == state.RouteBroadcast || r.typ == state.RouteMulticast {
			if v := nfteval.Hook(fw, "input", np); v.Drop {
				return drop(v)
			}
			return Fate{Kind: Local, Dev: "lo"}, np.Src
		}
		if p.Family == 6 && e.st.Sysctls["net.ipv6.conf.all.forwarding"] != "1" {
			// ip6_forward drops what the route lookup would forward.
			return Fate{Kind: Refused, Reason: "IPv6 forwarding is off"}, np.Src
		}
		np.OIF = r.dev
		np.SrcOnOIF = srcOnDev(e.st, np.OIF, np.Src)
		if v := nfteval.Hook(fw, "forward", np); v.Drop {
			return drop(v)
		}
		if v := nfteval.Hook(fw, "postrouting", np, "filter"); v.Drop {
			return drop(v)
		}
		return e.out(r.dev), np.Src
	}
	q.UID, q.HasUID = p.UID, true
	np.Socket, np.UID, np.Cgroup = true, p.UID, p.Cgroup
	r := e.route(q, p)
	if r.err != "" {
		return Fate{Kind: Refused, Reason: r.err}, np.Src
	}
	if !np.Src.IsValid() {
		np.Src = r.src
	}
	np.OIF = r.dev
	np.SrcOnOIF = srcOnDev(e.st, np.OIF, np.Src)
	// A route-type chain that changes the mark makes the kernel route the
	// packet again, from the source it now has.
	v := nfteval.Hook(fw, "output", np, "route")
	if v.Drop {
		return drop(v)
	}
	if v.Mark != np.Mark {
		q.Mark, np.Mark = v.Mark, v.Mark
		if np.Src.IsValid() {
			q.From = np.Src
		}
		if r = e.route(q, p); r.err != "" {
			return Fate{Kind: Refused, Reason: r.err}, np.Src
		}
		np.OIF = r.dev
		np.SrcOnOIF = srcOnDev(e.st, np.OIF, np.Src)
	}
	if v := nfteval.Hook(fw, "output", np, "filter"); v.Drop {
		return drop(v)
	}
	if r.local || r.dev == "lo" {
		return Fate{Kind: Local, Dev: "lo"}, np.Src
	}
	if v := nfteval.Hook(fw, "postrouting", np, "filter"); v.Drop {
		return drop(v)
	}
	return e.out(r.dev), np.Src
}
