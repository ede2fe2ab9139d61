package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"
)

// decodeJSON is the reference decoding: encoding/json as Parse used it
// before the fast path, without validation.
func decodeJSON(data []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

type randState struct{ r *rand.Rand }

func (g randState) n(k int) int { return g.r.IntN(k) }

func (g randState) addr(v6 bool) netip.Addr {
	if !v6 {
		return netip.AddrFrom4([4]byte{byte(g.n(256)), byte(g.n(256)), byte(g.n(256)), byte(g.n(256))})
	}
	var b [16]byte
	for i := range b {
		if g.n(3) == 0 {
			b[i] = byte(g.n(256))
		}
	}
	a := netip.AddrFrom16(b)
	switch g.n(8) {
	case 0:
		a = netip.AddrFrom16(netip.AddrFrom4([4]byte{10, byte(g.n(256)), 0, 1}).As16()) // ::ffff:10.x.0.1
	case 1:
		a = a.WithZone("eth0")
	}
	return a
}

func (g randState) maybeAddr() netip.Addr {
	if g.n(3) == 0 {
		return netip.Addr{}
	}
	return g.addr(g.n(2) == 0)
}

func (g randState) prefix(v6 bool) netip.Prefix {
	a := g.addr(v6).WithZone("")
	p := netip.PrefixFrom(a, g.n(a.BitLen()+1))
	if g.n(4) != 0 {
		p = p.Masked()
	}
	return p
}

func (g randState) maybePrefix() netip.Prefix {
	if g.n(3) == 0 {
		return netip.Prefix{}
	}
	return g.prefix(g.n(2) == 0)
}

func (g randState) u32() uint32 {
	switch g.n(4) {
	case 0:
		return 0
	case 1:
		return 0xffffffff
	case 2:
		return uint32(g.n(300))
	}
	return g.r.Uint32()
}

func (g randState) int() int {
	switch g.n(4) {
	case 0:
		return 0
	case 1:
		return -g.n(1000)
	}
	return g.n(1 << 20)
}

func (g randState) flags(unknown bool) uint32 {
	v := uint32(g.n(0x1000))
	if g.n(4) == 0 {
		v = 0
	}
	if unknown && g.n(20) == 0 {
		v |= 0x80000
	}
	return v
}

func (g randState) name() string {
	if g.n(20) == 0 {
		odd := []string{"a\"b", "tun\\0", "ünï", "a\tb", "\u2028"}
		return odd[g.n(len(odd))]
	}
	names := []string{"", "lo", "eth0", "up1", "wg-x", "a b"}
	return names[g.n(len(names))]
}

func (g randState) route(unknown bool) Route {
	r := Route{Table: g.u32(), Type: RouteType(g.n(256)), Dst: g.maybePrefix(), Src: g.maybePrefix(),
		TOS: uint8(g.n(256)), Metric: g.u32(), Protocol: Protocol(g.n(256)), Scope: Scope(g.n(256)),
		PrefSrc: g.maybeAddr(), Flags: NexthopFlags(g.flags(unknown) & 0x7f), Pref: uint8(g.n(4)),
		Expires: g.u32(), NHID: g.u32(), MTU: g.u32(), NHGroup: NHGroupKind(g.n(3))}
	if g.n(3) == 0 {
		r.Type = RouteType(1 + g.n(11))
		r.Protocol = Protocol([]int{0, 2, 3, 4, 116, 186}[g.n(6)])
		r.Scope = Scope([]int{0, 200, 253, 254, 255}[g.n(5)])
	}
	if g.n(10) == 0 {
		r.Flags |= NexthopFlags(g.flags(unknown) & 0x80000)
	}
	for k := g.n(4); k > 0; k-- {
		nh := Nexthop{Gateway: g.maybeAddr(), Dev: g.name(), Index: g.int(), Weight: g.int(), Flags: NexthopFlags(g.flags(unknown) & 0x7f)}
		if g.n(4) == 0 {
			nh.Member = &Member{PrefSrc: g.maybeAddr(), Pref: uint8(g.n(4)), MTU: g.u32(), Unknown: g.n(2) == 0}
		}
		r.Nexthops = append(r.Nexthops, nh)
	}
	return r
}

func (g randState) state(unknown bool) *State {
	s := &State{Version: g.n(3), Namespace: g.name()}
	for k := g.n(4); k > 0; k-- {
		s.Links = append(s.Links, Link{Index: g.int(), Name: g.name(), Kind: g.name(), Up: g.n(2) == 0,
			Carrier: g.n(2) == 0, Loopback: g.n(2) == 0, MTU: g.int(), Group: g.u32(), Alias: g.name()})
	}
	for k := g.n(5); k > 0; k-- {
		s.Addrs = append(s.Addrs, Addr{Dev: g.name(), Index: g.int(), Prefix: g.maybePrefix(), Peer: g.maybePrefix(),
			Broadcast: g.maybeAddr(), Scope: Scope(g.n(256)), Flags: AddrFlags(g.flags(unknown)), Label: g.name(),
			Proto: Protocol(g.n(256)), ValidLft: g.u32(), PreferredLft: g.u32()})
	}
	for k := g.n(30); k > 0; k-- {
		s.Routes = append(s.Routes, g.route(unknown))
	}
	for k := g.n(3); k > 0; k-- {
		rs := RouteSet{Template: g.route(unknown)}
		for j := g.n(5); j > 0; j-- {
			rs.Dsts = append(rs.Dsts, g.maybePrefix())
		}
		s.RouteSets = append(s.RouteSets, rs)
	}
	for k := g.n(3); k > 0; k-- {
		ru := NewRule(4 + 2*g.n(2))
		ru.Priority, ru.Src, ru.IIF, ru.Table = g.u32(), g.maybePrefix(), g.name(), g.u32()
		if g.n(2) == 0 {
			ru.DPort = &PortRange{uint16(g.n(100)), uint16(g.n(100))}
		}
		s.Rules = append(s.Rules, ru)
	}
	for k := g.n(3); k > 0; k-- {
		o := NexthopObject{ID: g.u32(), Family: 4, Gateway: g.maybeAddr(), Dev: g.name(), Scope: Scope(g.n(256))}
		if g.n(2) == 0 {
			o.Group, o.GroupKind = []GroupEntry{{ID: 1, Weight: g.n(5)}, {ID: 2}}, NHGroupKind(1+g.n(2))
			o.Resilient = &ResilientParams{Buckets: uint16(g.n(100)), IdleTimer: 120}
		}
		s.NexthopObjects = append(s.NexthopObjects, o)
	}
	if g.n(2) == 0 {
		s.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	}
	if g.n(2) == 0 {
		t, seed := true, uint32(g.n(100))
		s.Hidden = Hidden{RulesModified: &t, MultipathHashSeed: &seed}
	}
	if g.n(3) == 0 {
		s.AddrLabels = []AddrLabel{{Prefix: g.prefix(true), Label: g.u32(), Dev: g.name()}}
	}
	return s
}

// TestFastParseDifferential: random states, written by Write and read by
// the fast path, equal what encoding/json reads; so do variants with
// empty arrays and nulls.
func TestFastParseDifferential(t *testing.T) {
	g := randState{rand.New(rand.NewPCG(1, 2))}
	fast := 0
	const n = 400
	for i := 0; i < n; i++ {
		s := g.state(i%2 == 0)
		var buf bytes.Buffer
		if err := s.Write(&buf); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		variants := [][]byte{data, compact(data),
			bytes.Replace(data, []byte(`"routes": null`), []byte(`"routes": []`), 1),
			bytes.Replace(data, []byte(`"addrs": null`), []byte(`"addrs": [ ]`), 1),
			bytes.Replace(data, []byte(`"flags": []`), []byte(`"flags": null`), 1),
			bytes.Replace(data, []byte(`"table"`), []byte(`"Table"`), 1),
			bytes.Replace(data, []byte(`"dev": "eth0"`), []byte(`"dev": "eth0", "dev": "lo"`), 1),
			bytes.Replace(data, []byte(`"dsts": [`), []byte(`"dsts": [],"dsts": [`), 1),
		}
		for vi, v := range variants {
			want, werr := decodeJSON(v)
			got, ok := parseFast(v)
			if ok {
				if vi == 0 {
					fast++
				}
				if werr != nil {
					t.Fatalf("state %d variant %d: fast path accepts what encoding/json rejects (%v):\n%s", i, vi, werr, v)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("state %d variant %d: fast path differs:\n%+v\n%+v\n%s", i, vi, got, want, v)
				}
			}
			checkParse(t, v)
		}
	}
	t.Logf("fast path took %d of %d written states", fast, n)
	if fast < n/5 {
		t.Errorf("fast path took only %d of %d written states", fast, n)
	}
	// States with known names and flags only must all take the fast path.
	for i := 0; i < 300; i++ {
		s := g.state(false)
		for j := range s.Addrs {
			s.Addrs[j].Dev, s.Addrs[j].Label = "eth0", ""
		}
		for j := range s.Routes {
			for k := range s.Routes[j].Nexthops {
				s.Routes[j].Nexthops[k].Dev = "eth0"
			}
		}
		s.RouteSets = nil
		var buf bytes.Buffer
		s.Write(&buf)
		if _, ok := parseFast(buf.Bytes()); !ok {
			t.Fatalf("fast path refused a plain state:\n%s", buf.Bytes())
		}
	}
}

func compact(data []byte) []byte {
	var b bytes.Buffer
	json.Compact(&b, data)
	return b.Bytes()
}

// checkParse: Parse (fast path first) and parseJSON (encoding/json alone)
// both accept with equal results or both fail with the same error.
func checkParse(t *testing.T, data []byte) {
	t.Helper()
	got, gerr := Parse(data, "s.json")
	want, werr := parseJSON(data, "s.json")
	if fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Fatalf("errors differ: %v, want %v\n%q", gerr, werr, data)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("results differ:\n%+v\n%+v\n%q", got, want, data)
	}
}

// FuzzFastParse compares the fast path with encoding/json on arbitrary
// input. The seeds are large: run it with a short -fuzzminimizetime (2s),
// or minimizing new inputs takes most of the time.
func FuzzFastParse(f *testing.F) {
	g := randState{rand.New(rand.NewPCG(3, 4))}
	for i := 0; i < 3; i++ {
		var buf bytes.Buffer
		g.state(false).Write(&buf)
		f.Add(buf.Bytes())
	}
	var buf bytes.Buffer
	sample().Write(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte(`{"version":1,"routes":[{"table":254,"type":"unicast","dst":"10.0.0.0/8","nexthops":[{"dev":"lo","weight":-0}]}],"links":[{"index":1,"name":"lo"}]}`))
	f.Add([]byte(`{"version":1,"route_sets":[{"template":{"type":"blackhole"},"dsts":["10.0.0.0/8","::/0",""]}]}`))
	f.Add([]byte(`{"version":1,"addrs":null,"routes":[],"hidden":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := decodeJSON(data)
		if got, ok := parseFast(data); ok {
			if werr != nil {
				t.Fatalf("fast path accepts what encoding/json rejects (%v)", werr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast path differs:\n%+v\n%+v", got, want)
			}
		}
		checkParse(t, data)
	})
}

// BenchmarkParse parses a snapshot of TUNROUTE_PARSE_ROUTES (default
// 1,000,000) generated routes with Parse and with encoding/json alone.
func BenchmarkParse(b *testing.B) {
	data := bigSnapshot(b)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Parse(data, "big.json"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := parseJSON(data, "big.json"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// bigSnapshot writes a state shaped like fibbench's: four uplinks, 10% of
// the routes IPv6, single-path routes through an uplink's gateway.
func bigSnapshot(tb testing.TB) []byte {
	n := 1_000_000
	if v := os.Getenv("TUNROUTE_PARSE_ROUTES"); v != "" {
		fmt.Sscan(v, &n)
	}
	r := rand.New(rand.NewPCG(1, 1))
	s := &State{Version: Version, Links: []Link{{Index: 1, Name: "lo", Up: true, Loopback: true}}}
	for i := 1; i <= 4; i++ {
		dev := fmt.Sprintf("up%d", i)
		s.Links = append(s.Links, Link{Index: 1 + 2*i, Name: dev, Up: true, Carrier: true})
		s.Addrs = append(s.Addrs, Addr{Dev: dev, Index: 1 + 2*i, Prefix: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.1/24", i))})
	}
	for i := 0; i < n+n/10; i++ {
		up := 1 + r.IntN(4)
		rt := Route{Table: 254, Type: RouteUnicast, Protocol: 3}
		if i < n {
			rt.Dst = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(r.IntN(224)), byte(r.IntN(256)), byte(r.IntN(256)), 0}), 16+r.IntN(9)).Masked()
			rt.Nexthops = []Nexthop{{Gateway: netip.AddrFrom4([4]byte{10, byte(up), 0, 254}), Dev: fmt.Sprintf("up%d", up), Index: 1 + 2*up}}
		} else {
			var a [16]byte
			a[0], a[1], a[2], a[3], a[4], a[5] = 0x20, 0x01, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))
			rt.Dst = netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(17)).Masked()
			rt.Metric = 1024
			rt.Nexthops = []Nexthop{{Gateway: netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::fe", up)), Dev: fmt.Sprintf("up%d", up), Index: 1 + 2*up}}
		}
		s.Routes = append(s.Routes, rt)
	}
	var buf bytes.Buffer
	start := time.Now()
	if err := s.Write(&buf); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("snapshot: %d routes, %.1f MB (written in %v)", len(s.Routes), float64(buf.Len())/1e6, time.Since(start))
	return buf.Bytes()
}

// TestFastParseParallel: a routes array large enough to be split among
// goroutines reads the same as with encoding/json, also when a piece
// fails or the layout is not State.Write's.
func TestFastParseParallel(t *testing.T) {
	g := randState{rand.New(rand.NewPCG(5, 6))}
	s := &State{Version: Version, Links: []Link{{Index: 1, Name: "lo"}, {Index: 2, Name: "eth0"}}}
	for len(s.Routes) < 12000 {
		r := g.route(false)
		for k := range r.Nexthops {
			r.Nexthops[k].Dev = "eth0"
		}
		s.Routes = append(s.Routes, r)
	}
	s.RouteSets = []RouteSet{{Template: g.route(false), Dsts: []netip.Prefix{g.prefix(false)}}}
	s.RouteSets[0].Template.Nexthops = nil
	var buf bytes.Buffer
	s.Write(&buf)
	data := buf.Bytes()
	if len(data) < 2<<20 {
		t.Fatalf("snapshot of only %d bytes", len(data))
	}
	p := &fastParser{data: data, i: bytes.Index(data, []byte(`"routes": [`)) + len(`"routes": [`)}
	p.ws()
	if _, ok := p.routesParallel(); !ok {
		t.Error("routes not read in parallel")
	}
	mid := len(data) / 2
	variants := [][]byte{data,
		// A bad route in the second half; one at the start of a piece.
		append(bytes.Clone(data[:mid]), bytes.Replace(data[mid:], []byte(`"table": `), []byte(`"table": 01`), 1)...),
		append(bytes.Clone(data[:mid]), bytes.Replace(data[mid:], []byte("\n    {\n      \"table\""), []byte("\n    {\n      \"Table\""), 1)...),
		// Re-indented: the split mark appears inside a route.
		bytes.ReplaceAll(data, []byte("\n      \"nexthops\": [\n        {"), []byte("\n      \"nexthops\": [\n    {\n      \"table\": 1}, {")),
		append(bytes.Clone(data[:mid]), bytes.Replace(data[mid:], []byte("\n    {\n      \"table\""), []byte("\n    {\n      \"table\": 1, \"table\""), 1)...),
	}
	for i, v := range variants {
		want, werr := decodeJSON(v)
		if got, ok := parseFast(v); ok {
			if werr != nil {
				t.Fatalf("variant %d: fast path accepts what encoding/json rejects (%v)", i, werr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("variant %d: fast path differs", i)
			}
		} else if i == 0 {
			t.Fatal("fast path refused the snapshot")
		}
		checkParse(t, v)
	}
}

// TestFastParseMutated: written states with a few bytes changed to JSON
// punctuation read the same by Parse and by encoding/json alone.
func TestFastParseMutated(t *testing.T) {
	g := randState{rand.New(rand.NewPCG(3, 4))}
	r := rand.New(rand.NewPCG(9, 9))
	const punct = "{}[],:\"\\ 0a-"
	for i := 0; i < 1500; i++ {
		var buf bytes.Buffer
		g.state(false).Write(&buf)
		d := buf.Bytes()
		for k := r.IntN(4); k >= 0; k-- {
			d[r.IntN(len(d))] = punct[r.IntN(len(punct))]
		}
		want, werr := decodeJSON(d)
		if got, ok := parseFast(d); ok && (werr != nil || !reflect.DeepEqual(got, want)) {
			t.Fatalf("fast path disagrees with encoding/json (%v) on %q", werr, d)
		}
		checkParse(t, d)
	}
}
