// Command jsonlibs measures maintained JSON libraries against tunroute's
// hand-written snapshot reader (internal/state's fast path in Parse): it
// writes a snapshot of -routes routes the way `tunroute snapshot` does,
// reads it with each, checks that each reads the same state as
// encoding/json, and prints the best time of -repeat runs and the bytes
// allocated. It is a separate module so that the libraries it measures
// are not dependencies of tunroute.
//
//	cd bench/jsonlibs && go run . -routes 1000000
//	cd bench/jsonlibs && GOEXPERIMENT=jsonv2 go run . -routes 1000000   # with encoding/json/v2
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"time"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"

	"github.com/tunroute/tunroute/internal/state"
)

type decoder struct {
	name string
	read func(data []byte) (*state.State, error)
}

var decoders = []decoder{
	{"tunroute state.Parse (fast path)", func(d []byte) (*state.State, error) { return state.Parse(d, "snapshot.json") }},
	{"encoding/json", func(d []byte) (*state.State, error) {
		var s state.State
		return &s, json.Unmarshal(d, &s)
	}},
	{"goccy/go-json", func(d []byte) (*state.State, error) {
		var s state.State
		return &s, gojson.Unmarshal(d, &s)
	}},
	{"bytedance/sonic (std config)", func(d []byte) (*state.State, error) {
		var s state.State
		return &s, sonic.ConfigStd.Unmarshal(d, &s)
	}},
}

func main() {
	routes := flag.Int("routes", 200_000, "routes in the snapshot (10% more of them IPv6)")
	repeat := flag.Int("repeat", 3, "runs per library; the best is printed")
	flag.Parse()
	data := snapshot(*routes)
	fmt.Printf("snapshot: %d IPv4 + %d IPv6 routes, %.1f MB, GOMAXPROCS %d, %s\n",
		*routes, *routes/10, float64(len(data))/1e6, runtime.GOMAXPROCS(0), runtime.Version())
	var want *state.State
	for _, d := range decoders {
		best, alloc := time.Duration(1<<62), uint64(0)
		var got *state.State
		for range *repeat {
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			start := time.Now()
			s, err := d.read(data)
			el := time.Since(start)
			runtime.ReadMemStats(&m1)
			if err != nil {
				fmt.Printf("%-34s error: %v\n", d.name, err)
				got = nil
				break
			}
			got = s
			if el < best {
				best, alloc = el, m1.TotalAlloc-m0.TotalAlloc
			}
		}
		if got == nil {
			continue
		}
		if d.name == "encoding/json" {
			want = got
		}
		same := "same state as encoding/json"
		if want == nil {
			same = "(compared below)"
			want0, _ := decoders[1].read(data)
			if !reflect.DeepEqual(got, want0) {
				same = "DIFFERS from encoding/json"
			} else {
				same = "same state as encoding/json"
			}
		} else if !reflect.DeepEqual(got, want) {
			same = "DIFFERS from encoding/json"
		}
		fmt.Printf("%-34s %8.3f s %8.1f MB/s %8.0f MB allocated  %s\n", d.name, best.Seconds(),
			float64(len(data))/1e6/best.Seconds(), float64(alloc)/1e6, same)
	}
}

// snapshot writes a state shaped like a host's big table: four uplinks,
// single-path routes through an uplink's gateway, 10% IPv6.
func snapshot(n int) []byte {
	r := rand.New(rand.NewPCG(1, 1))
	s := &state.State{Version: state.Version, Links: []state.Link{{Index: 1, Name: "lo", Up: true, Loopback: true}}}
	for i := 1; i <= 4; i++ {
		dev := fmt.Sprintf("up%d", i)
		s.Links = append(s.Links, state.Link{Index: 1 + 2*i, Name: dev, Up: true, Carrier: true})
		s.Addrs = append(s.Addrs, state.Addr{Dev: dev, Index: 1 + 2*i, Prefix: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.1/24", i))})
	}
	for i := 0; i < n+n/10; i++ {
		up := 1 + r.IntN(4)
		rt := state.Route{Table: 254, Type: state.RouteUnicast, Protocol: 3}
		if i < n {
			rt.Dst = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(r.IntN(224)), byte(r.IntN(256)), byte(r.IntN(256)), 0}), 16+r.IntN(9)).Masked()
			rt.Nexthops = []state.Nexthop{{Gateway: netip.AddrFrom4([4]byte{10, byte(up), 0, 254}), Dev: fmt.Sprintf("up%d", up), Index: 1 + 2*up}}
		} else {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			a[4], a[5] = byte(r.IntN(256)), byte(r.IntN(256))
			rt.Dst = netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(17)).Masked()
			rt.Metric = 1024
			rt.Nexthops = []state.Nexthop{{Gateway: netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::fe", up)), Dev: fmt.Sprintf("up%d", up), Index: 1 + 2*up}}
		}
		s.Routes = append(s.Routes, rt)
	}
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return buf.Bytes()
}
