package fibdiff

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/fib"
	"github.com/tunroute/tunroute/internal/kerneltest"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// TestDifferential builds random routing states in throw-away network
// namespaces (tr-fx-d-<pid>-<n>), asks the kernel `ip -j -d route get` for
// random queries (through `ip -batch`), and compares every answer with
// Lookup on the Observe()d state and on the same state after a JSON round
// trip. It needs root; it never touches the host's own namespace.
//
//	TUNROUTE_DIFF_QUERIES  total queries (default 4000)
//	TUNROUTE_DIFF_SEED     first seed (default 1); state n uses seed+n
//	TUNROUTE_DIFF_STATES   number of states (default: queries/500, at least 8)
func TestDifferential(t *testing.T) {
	testns.Need(t, "ip")
	total := envInt("TUNROUTE_DIFF_QUERIES", 4000)
	seed := uint64(envInt("TUNROUTE_DIFF_SEED", 1))
	states := envInt("TUNROUTE_DIFF_STATES", max(8, total/500))
	perState := max(1, total/states)
	start := time.Now()
	compared, disagreements, uncertain := 0, 0, 0
	for n := 0; n < states; n++ {
		s := seed + uint64(n)
		c, d, u := runDiffState(t, s, n, perState)
		compared += c
		disagreements += d
		uncertain += u
		if disagreements >= 5 && !measure {
			t.Errorf("stopping after %d disagreements", disagreements)
			break
		}
	}
	t.Logf("differential: %d states, %d queries compared, %d disagreements, %d answers with an Uncertain note, %.1fs",
		states, compared, disagreements, uncertain, time.Since(start).Seconds())
	for fam := 4; fam <= 6; fam += 2 {
		c, d := famCount[fam][0], famCount[fam][1]
		if c > 0 {
			t.Logf("IPv%d: %d queries, %d disagreements: %.3f%% agree", fam, c, d, 100*float64(c-d)/float64(c))
		}
	}
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// diffSetup is everything that builds one namespace, in order.
type diffSetup struct {
	sysctls  [][2]string // before links: accept_dad
	links    []string
	devctl   [][2]string // sysctls that need the links
	general  []string    // addresses, routes (family from the addresses)
	rules4   []string
	rules6   []string
	post     []string
	unmerged bool
}

func (d *diffSetup) steps() []string {
	var out []string
	for _, kv := range d.sysctls {
		out = append(out, "sysctl "+kv[0]+"="+kv[1])
	}
	out = append(out, d.links...)
	for _, kv := range d.devctl {
		out = append(out, "sysctl "+kv[0]+"="+kv[1])
	}
	out = append(out, d.general...)
	for _, r := range d.rules4 {
		out = append(out, "-4 "+r)
	}
	for _, r := range d.rules6 {
		out = append(out, "-6 "+r)
	}
	return append(out, d.post...)
}

// apply builds the namespace from steps (the output of steps(), possibly
// reduced), batching consecutive commands of the same kind.
func applySteps(t testing.TB, ns string, steps []string) {
	var batch []string
	var fam string
	flush := func() {
		if len(batch) == 0 {
			return
		}
		args := []string{"-n", ns}
		if fam != "" {
			args = append(args, fam)
		}
		args = append(args, "-force", "-batch", "-")
		cmd := exec.Command("ip", args...)
		cmd.Stdin = strings.NewReader(strings.Join(batch, "\n") + "\n")
		_ = cmd.Run() // some random commands are refused; the observed state is the truth
		batch = batch[:0]
	}
	var sys []string
	flushSys := func() {
		if len(sys) == 0 {
			return
		}
		args := append([]string{"netns", "exec", ns, "sysctl", "-qw"}, sys...)
		_ = exec.Command("ip", args...).Run()
		sys = sys[:0]
	}
	for _, s := range steps {
		if kv, ok := strings.CutPrefix(s, "sysctl "); ok {
			flush()
			sys = append(sys, kv)
			continue
		}
		flushSys()
		f := ""
		line := s
		if strings.HasPrefix(s, "-4 ") || strings.HasPrefix(s, "-6 ") {
			f, line = s[:2], s[3:]
		}
		if f != fam {
			flush()
			fam = f
		}
		batch = append(batch, line)
	}
	flush()
	flushSys()
}

// newNS (re)creates the namespace with lo up; the test deletes it, and
// it goes at the latest when the test ends.
func newNS(t testing.TB, name string) { testns.NewNS(t, name) }

func delNS(name string) { _ = exec.Command("ip", "netns", "del", name).Run() }

// observe reads the namespace once it has settled: IPv6 addresses get
// their local routes from a workqueue (DAD completion, even with nodad),
// so a busy machine may show them a moment after the address.
func observe(t testing.TB, ns string, unmerged bool) *state.State {
	s := observeSnapshot(t, ns)
	// We know whether IPv4 rules were ever changed in this namespace.
	s.Hidden.RulesModified = &unmerged
	return s
}

// observeSnapshot is what `tunroute explain` would read: the hidden facts
// are only what the snapshot itself shows.
func observeSnapshot(t testing.TB, ns string) *state.State {
	t.Helper()
	return kerneltest.Settled(t, ns, 100, 20*time.Millisecond, func(s *state.State, try int) bool { return localRoutes6(s) || try > 50 })
}

// localRoutes6 reports whether every IPv6 address of a working link has
// its local route yet.
func localRoutes6(s *state.State) bool {
	up := map[string]bool{}
	for _, l := range s.Links {
		up[l.Name] = l.Up && l.Carrier
	}
	have := map[netip.Addr]bool{}
	for _, r := range s.Routes {
		if r.Table == state.TableLocal && r.Type == state.RouteLocal && r.Dst.IsSingleIP() {
			have[r.Dst.Addr()] = true
		}
	}
	for _, a := range s.Addrs {
		if a.Is6() && up[a.Dev] && a.Flags&state.AddrTentative == 0 && !have[a.Prefix.Addr()] {
			return false
		}
	}
	return true
}

// measure (TUNROUTE_DIFF_MEASURE=1) runs every query however many
// disagree, to measure agreement rather than to find a bug.
var measure = os.Getenv("TUNROUTE_DIFF_MEASURE") != ""

// famCount counts compared queries and disagreements by family.
var famCount = map[int]*[2]int{4: {}, 6: {}}

func runDiffState(t *testing.T, seed uint64, n, queries int) (compared, disagreements, uncertain int) {
	ns := fmt.Sprintf("tr-fx-d-%d-%d", os.Getpid(), n)
	newNS(t, ns)
	defer delNS(ns)
	t.Cleanup(func() { delNS(ns) })

	g := newDiffGen(seed)
	setup := g.setup()
	applySteps(t, ns, setup.steps())
	st := observe(t, ns, setup.unmerged)
	f1, err := fib.New(st)
	if err != nil {
		t.Fatalf("seed %d: New(observed): %v", seed, err)
	}
	var buf bytes.Buffer
	if err := st.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("TUNROUTE_DIFF_DUMP"); dir != "" {
		// the snapshot and setup of every state, to look into one
		_ = os.WriteFile(fmt.Sprintf("%s/%d.json", dir, seed), buf.Bytes(), 0o644)
		_ = os.WriteFile(fmt.Sprintf("%s/%d.setup", dir, seed), []byte(strings.Join(setup.steps(), "\n")+"\n"), 0o644)
	}
	st2, err := state.Parse(buf.Bytes(), "roundtrip")
	if err != nil {
		t.Fatalf("seed %d: state round trip: %v", seed, err)
	}
	f2, err := fib.New(st2)
	if err != nil {
		t.Fatalf("seed %d: New(round trip): %v", seed, err)
	}
	g.learn(st)
	qs := make([]string, queries)
	for i := range qs {
		qs[i] = g.query()
	}
	answers := kernelAnswers(t, ns, qs)
	for i, q := range qs {
		words := strings.Fields(q)
		pq, err := fib.ParseQuery(words)
		if err != nil {
			t.Fatalf("seed %d: generated query %q: %v", seed, q, err)
		}
		r1 := f1.Lookup(pq)
		r2 := f2.Lookup(pq)
		if a, b := string(r1.JSON()), string(r2.JSON()); a != b {
			t.Errorf("seed %d: query %q: answers differ after the state's JSON round trip:\n%s\n%s", seed, q, a, b)
			disagreements++
		}
		compared++
		fc := famCount[r1.Family]
		fc[0]++
		if len(r1.Uncertain) > 0 {
			uncertain++
		}
		if why := agree(answers[i], &r1); why != "" {
			disagreements++
			fc[1]++
			t.Errorf("seed %d (state %d): ip route get %s\n kernel: %s\n fib:    %s\n %s\n%s", seed, n, q, answers[i], r1.JSON(), why, r1.Text())
			if disagreements == 1 && os.Getenv("TUNROUTE_DIFF_NOMIN") == "" && !measure {
				minimize(t, seed, setup, q)
			}
			if disagreements >= 3 && !measure {
				return
			}
		}
	}
	return
}

var failedLine = regexp.MustCompile(`Command failed [^:]*:(\d+)`)

// kernelAnswers runs the queries through one `ip -j -d -batch`: the JSON
// object of each success, or "error: MESSAGE".
func kernelAnswers(t testing.TB, ns string, qs []string) []string {
	var in strings.Builder
	for _, q := range qs {
		in.WriteString("route get " + q + "\n")
	}
	cmd := exec.Command("ip", "-n", ns, "-j", "-d", "-force", "-batch", "-")
	cmd.Stdin = strings.NewReader(in.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	out := make([]string, len(qs))
	msgs := strings.Split(stderr.String(), "\n")
	var pending []string
	for _, m := range msgs {
		// "Command failed" may be glued to the next message
		for {
			loc := failedLine.FindStringSubmatchIndex(m)
			if loc == nil {
				if strings.TrimSpace(m) != "" {
					pending = append(pending, m)
				}
				break
			}
			if pre := strings.TrimSpace(m[:loc[0]]); pre != "" {
				pending = append(pending, pre)
			}
			ln, _ := strconv.Atoi(m[loc[2]:loc[3]])
			if ln >= 1 && ln <= len(qs) {
				out[ln-1] = "error: " + strings.Join(pending, " ")
			}
			pending = nil
			m = m[loc[1]:]
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	j := 0
	for i := range out {
		if out[i] != "" {
			continue
		}
		if j < len(lines) {
			l := strings.TrimSpace(lines[j])
			l = strings.TrimSuffix(strings.TrimPrefix(l, "["), "]")
			out[i] = l
			j++
		}
	}
	if j != len(lines) && !(len(lines) == 1 && lines[0] == "") {
		t.Fatalf("ip -batch: %d answers for %d successful queries", len(lines), j)
	}
	return out
}

// agree compares the kernel's answer with ours; "" when they agree: the
// answer is the kernel's (or the kernel's path is among the possible
// ones), or one of the answers under another hidden state is.
func agree(kern string, r *fib.Result) string {
	why := agreeAnswer(kern, r.AppendAnswerJSON(nil), r)
	if why == "" {
		return ""
	}
	for _, o := range r.Otherwise {
		if agreeAnswer(kern, o.Answer, r) == "" {
			return ""
		}
	}
	return why
}

func agreeAnswer(kern string, answer []byte, r *fib.Result) string {
	var fm map[string]any
	if err := json.Unmarshal(answer, &fm); err != nil {
		return "fib JSON: " + err.Error()
	}
	ferr, _ := fm["error"].(string)
	if msg, ok := strings.CutPrefix(kern, "error: "); ok {
		want := strings.TrimPrefix(msg, "RTNETLINK answers: ")
		want = strings.TrimSuffix(strings.TrimPrefix(want, "Error: "), ".")
		if ferr == "" && want == "Invalid argument" && hasNote(r, fib.UncertainMultipathValidation) {
			return "" // the kernel's hash picked a path that fails the source check
		}
		if ferr == "" {
			return "kernel failed, fib did not"
		}
		if ferr != want {
			return fmt.Sprintf("error %q, kernel %q", ferr, want)
		}
		return ""
	}
	if ferr != "" {
		return "fib failed, kernel did not"
	}
	var km map[string]any
	if err := json.Unmarshal([]byte(kern), &km); err != nil {
		return "kernel JSON: " + err.Error()
	}
	delete(fm, "otherwise")
	possible, _ := fm["possible"].([]any)
	delete(fm, "possible")
	delete(fm, "uncertain")
	if len(possible) > 0 {
		// any of the possible nexthops is an acceptable answer
		for _, k := range []string{"gateway", "dev", "prefsrc", "via"} {
			delete(fm, k)
		}
		// the redirect flag follows the chosen path
		delete(fm, "cache")
		delete(km, "cache")
		kp := map[string]any{}
		for _, k := range []string{"gateway", "dev", "prefsrc", "via"} {
			if v, ok := km[k]; ok {
				kp[k] = v
				delete(km, k)
			}
		}
		found := false
		for _, p := range possible {
			pm := p.(map[string]any)
			delete(pm, "weight")
			delete(pm, "flags")
			if _, ok := kp["prefsrc"]; !ok {
				delete(pm, "prefsrc")
			}
			if reflect.DeepEqual(pm, kp) {
				found = true
			}
		}
		if !found {
			return fmt.Sprintf("kernel's path %v is not among the possible ones", kp)
		}
	}
	if mpUncertain(r) && r.Query.FibMatch {
		if kn, ok := km["nexthops"].([]any); ok {
			if fn, ok := fm["nexthops"].([]any); ok && len(kn) == len(fn) {
				for k := range fn {
					rot := append(append([]any{}, fn[k:]...), fn[:k]...)
					if reflect.DeepEqual(rot, kn) {
						fm["nexthops"] = kn
					}
				}
			}
		}
	}
	if gwUncertain(r) && !reflect.DeepEqual(km, fm) {
		// the gateway's use was decided when the route was added
		delete(km, "gateway")
		delete(fm, "gateway")
		delete(km, "cache") // the redirect flag depends on it too
		delete(fm, "cache")
	}
	if !reflect.DeepEqual(km, fm) {
		var diffs []string
		keys := map[string]bool{}
		for k := range km {
			keys[k] = true
		}
		for k := range fm {
			keys[k] = true
		}
		var ks []string
		for k := range keys {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			if !reflect.DeepEqual(km[k], fm[k]) {
				diffs = append(diffs, fmt.Sprintf("%s: kernel %v, fib %v", k, km[k], fm[k]))
			}
		}
		return strings.Join(diffs, "; ")
	}
	return ""
}

// minimize reduces the setup to the smallest list of steps that still
// makes the kernel and the simulator disagree on q (delta debugging),
// rebuilding a namespace for every attempt, and prints it.
func minimize(t *testing.T, seed uint64, setup diffSetup, q string) {
	ns := fmt.Sprintf("tr-fx-d-%d-min", os.Getpid())
	defer delNS(ns)
	steps := setup.steps()
	deadline := time.Now().Add(90 * time.Second)
	fails := func(steps []string) bool {
		newNS(t, ns)
		applySteps(t, ns, steps)
		st := observe(t, ns, hasRuleStep(steps))
		f, err := fib.New(st)
		if err != nil {
			return false
		}
		pq, err := fib.ParseQuery(strings.Fields(q))
		if err != nil {
			return false
		}
		r := f.Lookup(pq)
		return agree(kernelAnswers(t, ns, []string{q})[0], &r) != ""
	}
	if !fails(steps) {
		t.Logf("seed %d: the disagreement does not reproduce in a fresh namespace (hidden state?)", seed)
		return
	}
	chunk := len(steps) / 2
	for chunk >= 1 && time.Now().Before(deadline) {
		reduced := false
		for i := 0; i < len(steps) && time.Now().Before(deadline); {
			try := append(append([]string{}, steps[:i]...), steps[min(i+chunk, len(steps)):]...)
			if fails(try) {
				steps = try
				reduced = true
			} else {
				i += chunk
			}
		}
		if !reduced {
			chunk /= 2
		}
	}
	newNS(t, ns)
	applySteps(t, ns, steps)
	st := observe(t, ns, hasRuleStep(steps))
	f, _ := fib.New(st)
	pq, _ := fib.ParseQuery(strings.Fields(q))
	r := f.Lookup(pq)
	t.Logf("seed %d: minimal setup (%d steps):\n  %s\nquery: ip route get %s\n kernel: %s\n fib:    %s\n%s",
		seed, len(steps), strings.Join(steps, "\n  "), q, kernelAnswers(t, ns, []string{q})[0], r.JSON(), r.Text())
}

func hasRuleStep(steps []string) bool {
	for _, s := range steps {
		if strings.Contains(s, "rule add") || strings.Contains(s, "rule del") {
			return true
		}
	}
	return false
}

// ---- random states and queries ----

type diffGen struct {
	rnd      *rand.Rand
	pairs    int
	links    []string
	groups   map[string]int
	addrs4   []netip.Prefix
	addrs6   []netip.Prefix
	gw4      []netip.Addr
	gw6      []netip.Addr
	dsts     []netip.Prefix
	marks    []uint32
	uids     []uint32
	ports    []uint16
	observed *state.State
	// nexthop object ids usable by IPv4 routes (nh4: IPv4 and IPv6
	// nexthops, groups, blackholes) and by IPv6 routes (nh6)
	nh4, nh6 []int
}

// nexthopObjects creates nexthop objects: gateways (IPv4, IPv6,
// link-local), devices, blackholes, and groups of them with weights,
// hash-threshold and resilient.
func (g *diffGen) nexthopObjects() []string {
	if !g.p(0.5) {
		return nil
	}
	var out []string
	id := 1
	var single4, single6 []int
	for k, n := 0, 2+g.n(5); k < n; k++ {
		dev := g.dev()
		switch x := g.n(10); {
		case x < 4:
			out = append(out, fmt.Sprintf("nexthop add id %d via %s dev %s", id, pick(g, g.gw4), dev))
			single4 = append(single4, id)
		case x < 7:
			gw := pick(g, g.gw6)
			out = append(out, fmt.Sprintf("nexthop add id %d via %s dev %s", id, gw, dev))
			single6 = append(single6, id)
		case x < 8:
			out = append(out, fmt.Sprintf("nexthop add id %d dev %s", id, dev))
			if g.p(0.5) {
				single4 = append(single4, id)
			} else {
				out[len(out)-1] = "-6 " + out[len(out)-1]
				single6 = append(single6, id)
			}
		default:
			if g.p(0.5) {
				out = append(out, fmt.Sprintf("nexthop add id %d blackhole", id))
				g.nh4 = append(g.nh4, id)
			} else {
				out = append(out, fmt.Sprintf("-6 nexthop add id %d blackhole", id))
				g.nh6 = append(g.nh6, id)
			}
			id++
			continue
		}
		id++
	}
	g.nh4 = append(g.nh4, single4...)
	g.nh4 = append(g.nh4, single6...) // IPv4 routes may use IPv6 nexthops
	g.nh6 = append(g.nh6, single6...)
	group := func(members []int, v6 bool) {
		if len(members) == 0 {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "nexthop add id %d group ", id)
		used := map[int]bool{}
		for k, n := 0, 1+g.n(3); k < n; k++ {
			m := pick(g, members)
			if used[m] {
				continue
			}
			used[m] = true
			if b.Len() > 0 && !strings.HasSuffix(b.String(), " ") {
				b.WriteString("/")
			}
			fmt.Fprintf(&b, "%d", m)
			if g.p(0.4) {
				fmt.Fprintf(&b, ",%d", 1+g.n(4))
			}
		}
		if g.p(0.3) {
			fmt.Fprintf(&b, " type resilient buckets %d", pick(g, []int{8, 16, 32}))
		}
		out = append(out, b.String())
		if v6 {
			g.nh6 = append(g.nh6, id)
		}
		g.nh4 = append(g.nh4, id)
		id++
	}
	for k, n := 0, g.n(3); k < n; k++ {
		if g.p(0.5) {
			group(single4, false)
		} else {
			group(single6, true)
		}
	}
	return out
}

// nhidRoute is a route through a nexthop object.
func (g *diffGen) nhidRoute() string {
	v6 := len(g.nh4) == 0 || len(g.nh6) > 0 && g.p(0.5)
	var dst netip.Prefix
	var id int
	fam := ""
	if v6 {
		dst, id, fam = g.prefix6(), pick(g, g.nh6), "-6 "
	} else {
		dst, id = g.prefix4(), pick(g, g.nh4)
	}
	g.dsts = append(g.dsts, dst)
	verb := "add"
	if g.p(0.3) {
		verb = "append"
	}
	s := fmt.Sprintf("%sroute %s %s nhid %d%s", fam, verb, dst, id, g.table())
	if g.p(0.4) {
		s += " metric " + strconv.Itoa(pick(g, []int{0, 1, 100, 1024}))
	}
	return s
}

func newDiffGen(seed uint64) *diffGen {
	return &diffGen{rnd: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)), groups: map[string]int{}}
}

func (g *diffGen) p(prob float64) bool { return g.rnd.Float64() < prob }
func (g *diffGen) n(k int) int         { return g.rnd.IntN(k) }

func pick[T any](g *diffGen, xs []T) T { return xs[g.rnd.IntN(len(xs))] }

// maybeSysctl is a sysctl set with probability p, to a value drawn only
// then (the random stream stays what it was when each had its own if).
type maybeSysctl struct {
	p   float64
	key string
	val func() string
}

func (g *diffGen) maybe(set func(k, v string), opts []maybeSysctl) {
	for _, o := range opts {
		if g.p(o.p) {
			set(o.key, o.val())
		}
	}
}

// maybeAddr is an address added with probability p.
type maybeAddr struct {
	p           float64
	dev         string
	addr, extra string
}

// routeTypes4 and routeTypes6 are the route types drawn out of 100: each
// below its bound, the rest unicast.
var (
	routeTypes4 = []routeTypeBound{{6, "blackhole"}, {12, "unreachable"}, {17, "prohibit"}, {23, "throw"},
		{28, "local"}, {31, "broadcast"}, {33, "anycast"}, {35, "multicast"}}
	routeTypes6 = []routeTypeBound{{6, "blackhole"}, {12, "unreachable"}, {17, "prohibit"}, {23, "throw"},
		{27, "local"}, {29, "anycast"}}
)

type routeTypeBound struct {
	below int
	typ   string
}

func (g *diffGen) routeType(bounds []routeTypeBound) string {
	x := g.n(100)
	for _, b := range bounds {
		if x < b.below {
			return b.typ
		}
	}
	return ""
}

// prefix is a random prefix of the family.
func (g *diffGen) prefix(v6 bool) netip.Prefix {
	if v6 {
		return g.prefix6()
	}
	return g.prefix4()
}

// ipproto is a random IP protocol name of the family.
func (g *diffGen) ipproto(v6 bool) string {
	if v6 {
		return pick(g, []string{"tcp", "udp", "ipv6-icmp"})
	}
	return pick(g, []string{"tcp", "udp", "icmp"})
}

func (g *diffGen) setup() diffSetup {
	var d diffSetup
	d.sysctls = [][2]string{{"net.ipv6.conf.all.accept_dad", "0"}, {"net.ipv6.conf.default.accept_dad", "0"}}
	g.pairs = 2 + g.n(3)
	for i := 1; i <= g.pairs; i++ {
		v, p := fmt.Sprintf("v%d", i), fmt.Sprintf("v%dp", i)
		d.links = append(d.links, fmt.Sprintf("link add %s type veth peer name %s", v, p))
		g.links = append(g.links, v, p)
	}
	for _, l := range g.links {
		d.links = append(d.links, "link set "+l+" up")
		if g.p(0.15) {
			grp := 1 + g.n(3)
			g.groups[l] = grp
			d.links = append(d.links, fmt.Sprintf("link set %s group %d", l, grp))
		}
	}
	// sysctls
	set := func(k, v string) { d.devctl = append(d.devctl, [2]string{k, v}) }
	if g.p(0.5) {
		set("net.ipv4.conf.all.forwarding", "1")
	}
	set("net.ipv4.conf.all.rp_filter", strconv.Itoa(pick(g, []int{0, 0, 1, 2})))
	one, zero := func() string { return "1" }, func() string { return "0" }
	for _, l := range g.links {
		g.maybe(set, []maybeSysctl{
			{0.15, "net.ipv4.conf." + l + ".rp_filter", func() string { return strconv.Itoa(g.n(3)) }},
			{0.1, "net.ipv4.conf." + l + ".ignore_routes_with_linkdown", one},
			{0.1, "net.ipv4.conf." + l + ".forwarding", func() string { return strconv.Itoa(g.n(2)) }},
			{0.08, "net.ipv4.conf." + l + ".send_redirects", zero},
			{0.08, "net.ipv6.conf." + l + ".ignore_routes_with_linkdown", one},
		})
	}
	g.maybe(set, []maybeSysctl{
		{0.15, "net.ipv4.conf.all.ignore_routes_with_linkdown", one},
		{0.1, "net.ipv4.conf.all.accept_local", one},
		{0.1, "net.ipv4.conf.all.src_valid_mark", one},
		{0.08, "net.ipv4.conf.all.shared_media", zero},
		{0.3, "net.ipv6.conf.all.forwarding", one},
		{0.75, "net.ipv4.fib_multipath_hash_seed", func() string { return strconv.Itoa(1 + g.n(1<<30)) }},
		{0.3, "net.ipv4.fib_multipath_hash_policy", one},
		{0.3, "net.ipv6.fib_multipath_hash_policy", one},
	})

	// addresses
	for i := 1; i <= g.pairs; i++ {
		v, p := fmt.Sprintf("v%d", i), fmt.Sprintf("v%dp", i)
		add4 := func(dev, a string, extra string) {
			pf := netip.MustParsePrefix(a)
			g.addrs4 = append(g.addrs4, pf)
			d.general = append(d.general, strings.TrimSpace("addr add "+a+" dev "+dev+" "+extra))
		}
		add6 := func(dev, a string, extra string) {
			pf := netip.MustParsePrefix(a)
			g.addrs6 = append(g.addrs6, pf)
			d.general = append(d.general, strings.TrimSpace("addr add "+a+" dev "+dev+" nodad "+extra))
		}
		add4(v, fmt.Sprintf("10.%d.0.1/24", i), "")
		for _, o := range []maybeAddr{
			{0.7, p, fmt.Sprintf("10.%d.0.2/24", i), ""},
			{0.3, v, fmt.Sprintf("10.%d.0.3/24", i), ""}, // secondary
			{0.3, v, fmt.Sprintf("10.%d.1.1/24", i), ""},
			{0.2, v, fmt.Sprintf("10.%d.2.1/30", i), ""},
			{0.15, p, fmt.Sprintf("10.%d.3.1/32", i), ""},
			{0.15, v, fmt.Sprintf("10.%d.4.1/24", i), "scope link"},
			{0.1, v, fmt.Sprintf("10.%d.5.1/24", i), "noprefixroute"},
			{0.1, v, fmt.Sprintf("198.51.100.%d/28", 16*i+1), ""},
		} {
			if g.p(o.p) {
				add4(o.dev, o.addr, o.extra)
			}
		}
		add6(v, fmt.Sprintf("2001:db8:%d::1/64", i), "")
		for _, o := range []maybeAddr{
			{0.6, p, fmt.Sprintf("2001:db8:%d::2/64", i), ""},
			{0.3, v, fmt.Sprintf("2001:db8:%d:1::1/64", i), ""},
			{0.15, v, fmt.Sprintf("2001:db8:%d:2::1/64", i), "preferred_lft 0"},
			{0.15, p, fmt.Sprintf("2001:db8:%d:3::1/128", i), ""},
		} {
			if g.p(o.p) {
				add6(o.dev, o.addr, o.extra)
			}
		}
		for _, a := range g.addrs4 {
			if a.Bits() < 31 {
				g.gw4 = append(g.gw4, a.Masked().Addr().Next().Next().Next().Next())
			}
		}
	}
	for i := 1; i <= g.pairs; i++ {
		g.gw4 = append(g.gw4, netip.MustParseAddr(fmt.Sprintf("10.%d.0.254", i)), netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", i)))
		g.gw6 = append(g.gw6, netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::fe", i)), netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::2", i)))
	}
	g.gw4 = append(g.gw4, netip.MustParseAddr("10.1.0.1")) // an own address
	g.gw6 = append(g.gw6, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::ff:fe00:1"), netip.MustParseAddr("fe80::2"))

	// nexthop objects and groups of every kind, used by some routes
	d.general = append(d.general, g.nexthopObjects()...)

	// routes
	nroutes := 15 + g.n(40)
	for i := 0; i < nroutes; i++ {
		switch {
		case g.p(0.1) && (len(g.nh4) > 0 || len(g.nh6) > 0):
			d.general = append(d.general, g.nhidRoute())
		case g.p(0.5):
			d.general = append(d.general, g.route4())
		default:
			d.general = append(d.general, g.route6()...)
		}
	}
	// rules
	if g.p(0.7) {
		for i, n := 0, g.n(10); i < n; i++ {
			d.rules4 = append(d.rules4, g.rule(false))
		}
		for i, n := 0, g.n(8); i < n; i++ {
			d.rules6 = append(d.rules6, g.rule(true))
		}
	}
	if len(d.rules6) == 0 && g.p(0.08) {
		// default IPv6 rules deleted, none added: the kernel keeps its
		// fast path
		d.rules6 = append(d.rules6, pick(g, []string{"rule del pref 32766", "rule del pref 0"}))
	}
	if len(d.rules4) > 0 || g.p(0.4) {
		// make sure some IPv4 rule change succeeded (random ones may all
		// be refused), so the merged/unmerged mode is known
		d.rules4 = append(d.rules4, "rule add pref 1 lookup 1", "rule del pref 1")
	}
	d.unmerged = len(d.rules4) > 0
	// link events after the routes exist
	for i := 1; i <= g.pairs; i++ {
		switch {
		case g.p(0.12):
			d.post = append(d.post, fmt.Sprintf("link set v%dp down", i)) // v%d loses carrier
		case g.p(0.08):
			d.post = append(d.post, fmt.Sprintf("link set v%d down", i))
		}
	}
	return d
}

func (g *diffGen) dev() string {
	if g.p(0.8) {
		return fmt.Sprintf("v%d", 1+g.n(g.pairs))
	}
	return pick(g, g.links)
}

func (g *diffGen) prefix4() netip.Prefix {
	switch g.n(10) {
	case 0:
		return netip.MustParsePrefix("0.0.0.0/0")
	case 1, 2:
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(g.n(256))})
		return netip.PrefixFrom(a, 24+g.n(9)).Masked()
	case 3, 4:
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(g.n(256))})
		return netip.PrefixFrom(a, 24+g.n(9)).Masked()
	default:
		a := netip.AddrFrom4([4]byte{10, byte(g.n(8)), byte(g.n(256)), byte(g.n(256))})
		return netip.PrefixFrom(a, 8+g.n(25)).Masked()
	}
}

func (g *diffGen) prefix6() netip.Prefix {
	if g.n(10) == 0 {
		return netip.MustParsePrefix("::/0")
	}
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	b[5] = byte(g.n(8))
	b[7] = byte(g.n(4))
	b[15] = byte(g.n(256))
	return netip.PrefixFrom(netip.AddrFrom16(b), 32+g.n(97)).Masked()
}

func (g *diffGen) table() string {
	switch g.n(6) {
	case 0, 1, 2:
		return ""
	case 3:
		return " table 100"
	case 4:
		return " table " + strconv.Itoa(101+g.n(3))
	}
	return " table local"
}

func (g *diffGen) route4() string {
	dst := g.prefix4()
	g.dsts = append(g.dsts, dst)
	var b strings.Builder
	verb := "route add "
	if g.p(0.1) {
		verb = "route append "
	}
	b.WriteString(verb)
	typ := g.routeType(routeTypes4)
	if typ != "" {
		b.WriteString(typ + " ")
	}
	b.WriteString(dst.String())
	if g.p(0.1) {
		b.WriteString(" tos " + pick(g, []string{"0x4", "0x8", "0x10", "0x18"}))
	}
	switch typ {
	case "blackhole", "unreachable", "prohibit", "throw":
	case "local", "broadcast", "anycast", "multicast":
		b.WriteString(" dev " + g.dev())
	default:
		switch x := g.n(10); {
		case x < 5:
			b.WriteString(" via " + pick(g, g.gw4).String())
			if g.p(0.4) {
				b.WriteString(" dev " + g.dev())
			}
			if g.p(0.05) {
				b.WriteString(" onlink")
			}
		case x < 8:
			b.WriteString(" dev " + g.dev())
		case x < 9:
			b.WriteString(" via inet6 " + pick(g, g.gw6).String() + " dev " + g.dev())
		default:
			for k, n := 0, 2+g.n(2); k < n; k++ {
				b.WriteString(" nexthop via " + pick(g, g.gw4).String())
				if g.p(0.3) {
					b.WriteString(fmt.Sprintf(" weight %d", 1+g.n(4)))
				}
			}
		}
	}
	b.WriteString(g.table())
	if g.p(0.3) {
		b.WriteString(" metric " + strconv.Itoa(pick(g, []int{0, 5, 10, 100, 1024})))
	}
	if g.p(0.1) && len(g.addrs4) > 0 {
		b.WriteString(" src " + pick(g, g.addrs4).Addr().String())
	}
	if g.p(0.05) {
		b.WriteString(" mtu 1400")
	}
	return b.String()
}

func (g *diffGen) route6() []string {
	dst := g.prefix6()
	g.dsts = append(g.dsts, dst)
	var b strings.Builder
	b.WriteString("route add ")
	typ := g.routeType(routeTypes6)
	if typ != "" {
		b.WriteString(typ + " ")
	}
	b.WriteString(dst.String())
	if g.p(0.1) && dst.Bits() > 0 {
		src := g.prefix6()
		if src.Bits() == 0 {
			src = netip.MustParsePrefix("2001:db8:1::/64")
		}
		b.WriteString(" from " + src.String())
	}
	var extra []string
	gwRoute := false
	switch typ {
	case "blackhole", "unreachable", "prohibit", "throw":
	case "local", "anycast":
		b.WriteString(" dev " + g.dev())
	default:
		if g.p(0.55) {
			gw := pick(g, g.gw6)
			b.WriteString(" via " + gw.String())
			gwRoute = true
			if g.p(0.4) || gw.IsLinkLocalUnicast() {
				b.WriteString(" dev " + g.dev())
			}
		} else {
			b.WriteString(" dev " + g.dev())
		}
	}
	tbl := g.table()
	if tbl == " table local" && typ == "" {
		tbl = ""
	}
	b.WriteString(tbl)
	metric := ""
	if g.p(0.4) {
		metric = " metric " + strconv.Itoa(pick(g, []int{1, 100, 256, 1024, 2048}))
	}
	b.WriteString(metric)
	pref := ""
	if g.p(0.2) {
		pref = " pref " + pick(g, []string{"low", "medium", "high"})
	}
	b.WriteString(pref)
	mtu := ""
	if g.p(0.05) {
		mtu = " mtu 1400"
	}
	b.WriteString(mtu)
	src := ""
	if g.p(0.05) && len(g.addrs6) > 0 {
		src = " src " + pick(g, g.addrs6).Addr().String()
	}
	b.WriteString(src)
	for k := 0; gwRoute && k < 2 && g.p(0.3); k++ {
		// an ECMP member, with its own device, src and pref at times
		m := "route append " + dst.String() + " via " + pick(g, g.gw6).String()
		if g.p(0.5) {
			m += " dev " + g.dev()
		}
		mpref, msrc := pref, src
		if g.p(0.4) {
			mpref = " pref " + pick(g, []string{"low", "medium", "high"})
		}
		if g.p(0.3) && len(g.addrs6) > 0 {
			msrc = " src " + pick(g, g.addrs6).Addr().String()
		}
		if g.p(0.2) {
			m += fmt.Sprintf(" weight %d", 1+g.n(4))
		}
		extra = append(extra, m+tbl+metric+mpref+msrc+mtu)
	}
	if typ == "" && !gwRoute && g.p(0.2) {
		extra = append(extra, "route append "+dst.String()+" dev "+g.dev()+tbl+metric+" pref "+pick(g, []string{"low", "high"}))
	}
	return append([]string{b.String()}, extra...)
}

func (g *diffGen) rule(v6 bool) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("rule add pref %d", pick(g, []int{5, 10, 100, 100, 200, 300, 1000, 5000, 20000})+g.n(3)))
	if g.p(0.1) {
		b.WriteString(" not")
	}
	src := func() string {
		if v6 {
			return pick(g, []string{"2001:db8:1::/48", "2001:db8:2::/64", "2001:db8::/32", "2001:db8:1::1", "2001:db8:3::/48"})
		}
		return pick(g, []string{"10.1.0.0/16", "10.2.0.0/24", "10.1.0.1", "10.0.0.0/8", "10.3.0.0/16", "0.0.0.0/1", "198.51.100.0/24"})
	}
	if g.p(0.3) {
		b.WriteString(" from " + src())
	}
	if g.p(0.25) {
		b.WriteString(" to " + g.prefix(v6).String())
	}
	if g.p(0.1) {
		if v6 {
			b.WriteString(" tos " + pick(g, []string{"0x10", "0x20", "0x28"}))
		} else {
			b.WriteString(" tos " + pick(g, []string{"0x04", "0x08", "0x10"}))
		}
	}
	if g.p(0.2) {
		m := uint32(pick(g, []int{1, 2, 5, 0x10, 0x100}))
		g.marks = append(g.marks, m)
		if g.p(0.5) {
			b.WriteString(fmt.Sprintf(" fwmark 0x%x/0x%x", m, pick(g, []int{0xff, 0xf0, 0xffff, 0x1})))
		} else {
			b.WriteString(fmt.Sprintf(" fwmark 0x%x", m))
		}
	}
	if g.p(0.12) {
		b.WriteString(" iif " + pick(g, append([]string{"lo", "lo", "nosuch0"}, g.links...)))
	}
	if g.p(0.08) {
		b.WriteString(" oif " + pick(g, append([]string{"nosuch1"}, g.links...)))
	}
	if g.p(0.1) {
		lo := pick(g, []int{0, 100, 1000})
		g.uids = append(g.uids, uint32(lo), uint32(lo+5))
		b.WriteString(fmt.Sprintf(" uidrange %d-%d", lo, lo+g.n(10)))
	}
	if g.p(0.12) {
		b.WriteString(" ipproto " + g.ipproto(v6))
	}
	if g.p(0.1) {
		lo := 1 + g.n(2000)
		g.ports = append(g.ports, uint16(lo), uint16(lo+10))
		b.WriteString(fmt.Sprintf(" dport %d-%d", lo, lo+g.n(100)))
	}
	if g.p(0.06) {
		lo := 1 + g.n(2000)
		g.ports = append(g.ports, uint16(lo))
		b.WriteString(fmt.Sprintf(" sport %d", lo))
	}
	switch x := g.n(100); {
	case x < 8:
		b.WriteString(fmt.Sprintf(" goto %d", pick(g, []int{100, 200, 300, 1000, 5000, 20000, 31000})))
	case x < 12:
		b.WriteString(" nop")
	case x < 15:
		b.WriteString(" unreachable")
	case x < 17:
		b.WriteString(" prohibit")
	case x < 19:
		b.WriteString(" blackhole")
	default:
		b.WriteString(" lookup " + pick(g, []string{"100", "101", "102", "103", "main", "main", "local", "default"}))
		if g.p(0.15) {
			b.WriteString(fmt.Sprintf(" suppress_prefixlength %d", pick(g, []int{0, 0, 8, 24, 32})))
		}
		if g.p(0.06) {
			b.WriteString(fmt.Sprintf(" suppress_ifgroup %d", g.n(3)))
		}
	}
	return b.String()
}

// learn records the observed addresses to draw queries from.
func (g *diffGen) learn(s *state.State) { g.observed = s }

func (g *diffGen) hostIn(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:]) | g.rnd.Uint32()&uint32(hostMask(p.Bits(), 32))
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8]) | g.rnd.Uint64()&hostMask(p.Bits(), 64)
	lo := binary.BigEndian.Uint64(b[8:]) | g.rnd.Uint64()&hostMask(p.Bits()-64, 64)
	if g.p(0.5) {
		lo = lo&^0xffff | uint64(g.n(16))
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// hostMask is the host part of a width-bit word whose first bits bits
// belong to the prefix (bits may be below 0 or above width).
func hostMask(bits, width int) uint64 {
	switch {
	case bits <= 0:
		return ^uint64(0) >> (64 - width)
	case bits >= width:
		return 0
	}
	return uint64(1)<<(width-bits) - 1
}

func (g *diffGen) query() string {
	v6 := g.p(0.5)
	var dst netip.Addr
	var locals []netip.Addr
	for _, a := range g.observed.Addrs {
		if a.Prefix.Addr().Is6() == v6 {
			locals = append(locals, a.Prefix.Addr())
		}
	}
	switch x := g.n(100); {
	case x < 40:
		var ps []netip.Prefix
		for _, p := range g.dsts {
			if p.Addr().Is6() == v6 {
				ps = append(ps, p)
			}
		}
		if len(ps) > 0 {
			dst = g.hostIn(pick(g, ps))
		} else {
			dst = g.hostIn(g.prefix(v6))
		}
	case x < 55 && len(locals) > 0:
		dst = pick(g, locals)
		if g.p(0.3) {
			dst = dst.Next()
		}
	case x < 62:
		if v6 {
			dst = netip.MustParseAddr(pick(g, []string{"ff02::1", "ff02::2", "fe80::1", "::1", "ff05::1"}))
		} else {
			dst = netip.MustParseAddr(pick(g, []string{"224.0.0.1", "224.0.0.5", "239.1.2.3", "255.255.255.255", "127.0.0.1", "0.0.0.0", "10.1.0.255", "10.2.0.255", "10.1.0.0"}))
		}
	default:
		dst = g.hostIn(g.prefix(v6))
	}
	var b strings.Builder
	if g.p(0.04) {
		b.WriteString("fibmatch ")
	}
	b.WriteString(dst.String())
	input := g.p(0.3)
	if g.p(0.55) || input && g.p(0.8) {
		var src netip.Addr
		switch x := g.n(10); {
		case x < 5 && len(locals) > 0:
			src = pick(g, locals)
		case x < 9:
			if v6 {
				src = g.hostIn(netip.MustParsePrefix(fmt.Sprintf("2001:db8:%d::/62", 1+g.n(g.pairs))))
			} else {
				src = g.hostIn(netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/22", 1+g.n(g.pairs))))
			}
		default:
			src = g.hostIn(g.prefix(v6))
		}
		b.WriteString(" from " + src.String())
	}
	if input {
		b.WriteString(" iif " + pick(g, append([]string{"lo"}, g.links...)))
	}
	if g.p(0.15) {
		b.WriteString(" oif " + pick(g, append([]string{"lo"}, g.links...)))
	}
	if g.p(0.2) {
		m := uint32(g.n(0x200))
		if len(g.marks) > 0 && g.p(0.7) {
			m = pick(g, g.marks) | uint32(g.n(2))<<8
		}
		b.WriteString(fmt.Sprintf(" mark 0x%x", m))
	}
	if g.p(0.15) {
		u := uint32(g.n(2000))
		if len(g.uids) > 0 && g.p(0.7) {
			u = pick(g, g.uids)
		}
		b.WriteString(fmt.Sprintf(" uid %d", u))
	}
	if g.p(0.3) {
		b.WriteString(" ipproto " + g.ipproto(v6))
		if g.p(0.7) {
			port := func() uint16 {
				if len(g.ports) > 0 && g.p(0.7) {
					return pick(g, g.ports)
				}
				return uint16(1 + g.n(3000))
			}
			b.WriteString(fmt.Sprintf(" sport %d dport %d", port(), port()))
		}
	}
	if g.p(0.12) {
		b.WriteString(fmt.Sprintf(" tos 0x%x", pick(g, []int{0x04, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x12, 0xb8})))
	}
	return b.String()
}

func gwUncertain(r *fib.Result) bool {
	for _, u := range r.Uncertain {
		if u == fib.UncertainGatewayScope {
			return true
		}
	}
	return false
}

func mpUncertain(r *fib.Result) bool {
	for _, u := range r.Uncertain {
		if u == fib.UncertainMultipathHash || u == fib.UncertainResilientGroup {
			return true
		}
	}
	return false
}

func hasNote(r *fib.Result, n string) bool {
	for _, u := range r.Uncertain {
		if u == n {
			return true
		}
	}
	return false
}
