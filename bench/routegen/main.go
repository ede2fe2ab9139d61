// Command routegen writes the route lists of bench/routes.sh: distinct
// prefixes with a deterministic pseudo-random Internet-like mix of
// prefix lengths, and a copy of a list with a share of it replaced.
//
//	routegen list -family 4|6 -n N [-seed S]        prefixes, one a line
//	routegen change -pct P [-seed S] < in > out    drop P% of the lines, add as many new prefixes
//	routegen fib -n4 N -n6 N -rules R -queries Q -dir D
//	                                               explain's full-table host (package fibbench) as ip -batch
//	                                               files in D: setup, routes, rules4, rules6, queries
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/tunroute/tunroute/internal/fib/fibbench"
)

// lengths4 is the share (per mille) of each IPv4 prefix length, roughly
// that of a full BGP table: mostly /24, then /22-/23, /16-/21, a few
// longer ones.
var lengths4 = []struct{ bits, share int }{
	{8, 1}, {12, 2}, {14, 3}, {15, 4}, {16, 25}, {17, 8}, {18, 14}, {19, 25}, {20, 40}, {21, 45},
	{22, 100}, {23, 95}, {24, 580}, {25, 12}, {26, 12}, {27, 10}, {28, 8}, {29, 7}, {30, 4}, {32, 5},
}

// lengths6 is a mix for IPv6 inside 2001:db8::/32 (documentation space).
var lengths6 = []struct{ bits, share int }{
	{36, 20}, {40, 60}, {44, 120}, {46, 40}, {47, 30}, {48, 480}, {52, 40}, {56, 120}, {60, 20}, {64, 70},
}

type gen struct {
	r     *rand.Rand
	v6    bool
	table []int // prefix length per mille
	seen  map[netip.Prefix]bool
}

func newGen(v6 bool, seed uint64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x7475_6e72_6f75_7465)), v6: v6, seen: map[netip.Prefix]bool{}}
	mix := lengths4
	if v6 {
		mix = lengths6
	}
	for _, l := range mix {
		for i := 0; i < l.share; i++ {
			g.table = append(g.table, l.bits)
		}
	}
	return g
}

// next returns a prefix not returned before.
func (g *gen) next() netip.Prefix {
	for {
		bits := g.table[g.r.IntN(len(g.table))]
		var p netip.Prefix
		if g.v6 {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			v := g.r.Uint64()
			for i := 0; i < 8; i++ {
				a[4+i] = byte(v >> (8 * i))
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked()
		} else {
			// Unicast space outside 0/8, 10/8, 127/8, 169.254/16,
			// 172.16/12, 192.168/16, 192.0.2/24 (this host's uplink)
			// and 224/3.
			v := g.r.Uint32N(223<<24-1<<24) + 1<<24
			a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			p = netip.PrefixFrom(a, bits).Masked()
			if reserved4(p) {
				continue
			}
		}
		if !g.seen[p] {
			g.seen[p] = true
			return p
		}
	}
}

var excluded4 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("192.0.2.0/24"),
}

func reserved4(p netip.Prefix) bool {
	for _, x := range excluded4 {
		if x.Overlaps(p) {
			return true
		}
	}
	return false
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	family := fs.Int("family", 4, "4 or 6")
	n := fs.Int("n", 100000, "number of prefixes")
	seed := fs.Uint64("seed", 1, "seed")
	pct := fs.Float64("pct", 1, "share of the list to replace, in percent")
	n4 := fs.Int("n4", 1_000_000, "fib: IPv4 routes")
	n6 := fs.Int("n6", 100_000, "fib: IPv6 routes")
	rules := fs.Int("rules", 1000, "fib: rules")
	queries := fs.Int("queries", 1_000_000, "fib: route get lines")
	dir := fs.String("dir", ".", "fib: directory for the files")
	fs.Parse(os.Args[2:])
	if os.Args[1] == "fib" {
		if err := writeFIB(*dir, *seed, *n4, *n6, *rules, *queries); err != nil {
			fmt.Fprintln(os.Stderr, "routegen:", err)
			os.Exit(1)
		}
		return
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	switch os.Args[1] {
	case "list":
		if *family != 4 && *family != 6 {
			usage()
		}
		g := newGen(*family == 6, *seed)
		for i := 0; i < *n; i++ {
			fmt.Fprintln(w, g.next())
		}
	case "change":
		var in []netip.Prefix
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			p, err := netip.ParsePrefix(sc.Text())
			if err != nil {
				fmt.Fprintln(os.Stderr, "routegen:", err)
				os.Exit(1)
			}
			in = append(in, p)
		}
		if len(in) == 0 {
			fmt.Fprintln(os.Stderr, "routegen: empty list")
			os.Exit(1)
		}
		g := newGen(in[0].Addr().Is6(), *seed)
		for _, p := range in {
			g.seen[p] = true
		}
		k := int(float64(len(in)) * *pct / 100)
		drop := map[int]bool{}
		for len(drop) < k {
			drop[g.r.IntN(len(in))] = true
		}
		for i, p := range in {
			if !drop[i] {
				fmt.Fprintln(w, p)
			}
		}
		for i := 0; i < k; i++ {
			fmt.Fprintln(w, g.next())
		}
	default:
		usage()
	}
}

// writeFIB writes the host of explain's benchmark (the same spec as
// internal/fib's in-process benchmarks and fibdiff's kernel comparison)
// as files for ip -batch: setup (links, addresses, defaults), routes,
// rules4 and rules6 (rule add lines of each family) and queries (route
// get lines, the same seed as fibdiff's).
func writeFIB(dir string, seed uint64, n4, n6, rules, queries int) error {
	s := fibbench.Generate(seed, n4, n6, rules)
	files := []struct {
		name  string
		lines []string
	}{
		{"setup", s.Setup}, {"routes", s.RouteCommands()}, {"rules4", s.Rules4}, {"rules6", s.Rules6},
		{"queries", s.Queries(seed+1, queries)},
	}
	for _, f := range files {
		var b strings.Builder
		for _, l := range f.lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: routegen list -family 4|6 -n N [-seed S] | routegen change -pct P [-seed S] < list | routegen fib [-n4 N] [-n6 N] [-rules R] [-queries Q] -dir D")
	os.Exit(2)
}
