package bgptest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/bgp"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/lab"
)

func speakersOf(t *testing.T, cfgPath, top string) []bgp.Speaker {
	t.Helper()
	cfg, err := config.Load(cfgPath, config.Options{TableNames: map[string]uint32{"main": 254}})
	if err != nil {
		t.Fatal(err)
	}
	return bgp.Speakers(cfg, top)
}

// sites builds the two sites: namespaces a and b joined by an underlay
// veth (ul0, 198.51.100.0/30) carrying a WireGuard tunnel (wg0,
// 10.255.0.0/30, wireguard-go in this process), the domains made by
// tunroute apply from testdata/site.yaml, and an address in each domain
// (10.N.0.1 on lo; hostile also 10.66.N.1) to send traffic from and to.
func sites(t *testing.T, e *env, maxPrefixes int) (cfgA, cfgB string) {
	siteA, siteB := e.NS("a"), e.NS("b")
	e.addNS("a", "b")
	e.veth(siteA, "ul0", "198.51.100.1/30", siteB, "ul0", "198.51.100.2/30")
	var keys [2]lab.Key
	for i := range keys {
		k, err := lab.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	for i, ns := range []string{siteA, siteB} {
		other := 1 - i
		w, err := lab.StartWireGuard(lab.WGConfig{NS: ns, Name: "wg0", PrivateKey: keys[i], ListenPort: 51820,
			Addrs: []netip.Prefix{mustPrefix(fmt.Sprintf("10.255.0.%d/30", i+1))},
			Peers: []lab.WGPeer{{PublicKey: keys[other].Public(), Keepalive: 1,
				Endpoint:   netip.MustParseAddrPort(fmt.Sprintf("198.51.100.%d:51820", other+1)),
				AllowedIPs: []netip.Prefix{mustPrefix(fmt.Sprintf("10.255.0.%d/32", other+1))}}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
	}
	data := func(site string, me, other int) map[string]any {
		return map[string]any{"Site": site, "Me": me, "Other": other, "MaxPrefixes": maxPrefixes, "KillSwitch": false, "Engine": e.engine}
	}
	cfgA = e.config("site-a.yaml", "site.yaml", data("a", 1, 2))
	cfgB = e.config("site-b.yaml", "site.yaml", data("b", 2, 1))
	e.apply(cfgA, siteA)
	e.apply(cfgB, siteB)
	for n, site := range []string{"a", "b"} {
		for _, dom := range []string{"private", "hostile"} {
			ns := e.NS(site + "-" + dom)
			e.ip(ns, "addr", "add", fmt.Sprintf("10.%d.0.1/32", n+1), "dev", "lo")
			if dom == "hostile" {
				e.ip(ns, "addr", "add", fmt.Sprintf("10.66.%d.1/32", n+1), "dev", "lo")
			}
		}
	}
	return cfgA, cfgB
}

// TestTwoSites: routes propagate per domain over one tunnel, traffic
// flows between the private domains, hostile routes and traffic never
// reach them; the filters refuse what a neighbour may not originate; a
// max-prefix breach tears the session down; a cut link withdraws the
// routes (BFD and hold timer, times printed); learned routes are left
// alone by plan and apply; Stop leaves no file or route behind.
func TestTwoSites(t *testing.T) { twoSites(t, "bird") }

// TestTwoSitesFRR is TestTwoSites with FRR as the engine (the attacker
// stays a BIRD).
func TestTwoSitesFRR(t *testing.T) { twoSites(t, "frr") }

func twoSites(t *testing.T, engine string) {
	e := newEnv(t, engine, engine)
	ctx := context.Background()
	const maxPrefixes = 6
	cfgA, cfgB := sites(t, e, maxPrefixes)
	siteA, siteB := e.NS("a"), e.NS("b")
	aPriv, aHost, bPriv, bHost := e.NS("a-private"), e.NS("a-hostile"), e.NS("b-private"), e.NS("b-hostile")

	// tunroute apply started every speaker: nothing is left to start.
	for _, c := range []struct{ cfg, top string }{{cfgA, siteA}, {cfgB, siteB}} {
		if changes, err := e.bgp.Changes(speakersOf(t, c.cfg, c.top), c.top); err != nil || len(changes) != 0 {
			t.Fatalf("after tunroute apply --netns %s, speaker changes left: %v %v", c.top, changes, err)
		}
	}
	start := time.Now()
	ssA := e.startBGP(cfgA, siteA)
	e.startBGP(cfgB, siteB)
	if len(ssA) != 2 || ssA[0].Netns != aPriv || ssA[1].Netns != aHost {
		t.Fatalf("speakers of site a: %+v", ssA)
	}
	want := map[string][]string{
		aPriv: {"10.2.0.0/24 dev vxp"},
		bPriv: {"10.1.0.0/24 dev vxp"},
		aHost: {"10.2.0.0/24 dev vxh", "10.66.2.0/24 dev vxh"},
		bHost: {"10.1.0.0/24 dev vxh", "10.66.1.0/24 dev vxh"},
	}
	for _, ns := range []string{aPriv, bPriv, aHost, bHost} {
		if _, err := e.waitRoutes(ns, want[ns], 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("FIGURE %s: initial convergence (start of 4 instances to all routes in the 4 kernels): %s", engine, time.Since(start).Round(time.Millisecond))

	t.Run("idempotent", func(t *testing.T) {
		for _, c := range []struct{ cfg, top string }{{cfgA, siteA}, {cfgB, siteB}} {
			changes, err := e.bgp.Changes(speakersOf(t, c.cfg, c.top), c.top)
			if err != nil || len(changes) != 0 {
				t.Errorf("changes right after start: %v %v; want none", changes, err)
			}
		}
	})

	t.Run("traffic", func(t *testing.T) {
		for _, c := range []struct {
			ns   string
			port int
		}{{bPriv, 7000}, {bHost, 7001}} {
			srv, err := lab.ListenEcho(c.ns, c.port)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
		}
		src := netip.MustParseAddr("10.1.0.1")
		// private <-> private across the sites.
		if got, err := lab.Probe(ctx, aPriv, src, netip.MustParseAddrPort("10.2.0.1:7000")); err != nil || got != src {
			t.Errorf("a-private -> b-private 10.2.0.1:7000: %v %v; want seen from %s", got, err, src)
		}
		// hostile <-> hostile too, on the same (overlapping) addresses.
		if got, err := lab.Probe(ctx, aHost, src, netip.MustParseAddrPort("10.2.0.1:7001")); err != nil || got != src {
			t.Errorf("a-hostile -> b-hostile 10.2.0.1:7001: %v %v", got, err)
		}
		// Neither reaches the other's service at the same address.
		if got, err := lab.Probe(ctx, aPriv, src, netip.MustParseAddrPort("10.2.0.1:7001")); err == nil {
			t.Errorf("a-private reached b-hostile's service (seen from %s)", got)
		}
		if got, err := lab.Probe(ctx, aHost, src, netip.MustParseAddrPort("10.2.0.1:7000")); err == nil {
			t.Errorf("a-hostile reached b-private's service (seen from %s)", got)
		}
		// Hostile's own range is nowhere in private.
		if _, err := lab.Probe(ctx, aPriv, src, netip.MustParseAddrPort("10.66.2.1:7001")); err == nil {
			t.Errorf("a-private reached hostile's 10.66.2.1")
		}
	})

	t.Run("status", func(t *testing.T) {
		if out, code := e.tr("status", "-c", cfgA, "--netns", siteA); code != 0 || !strings.Contains(out, "BGP") {
			t.Errorf("tunroute status --netns %s shows no BGP speaker: exit %d\n%s", siteA, code, out)
		}
		st, err := e.bgp.Status(ctx, siteA)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 2 {
			t.Fatalf("status of site a: %+v", st)
		}
		for _, s := range st {
			if !s.Running || len(s.Session) != 1 || !s.Session[0].Established() {
				t.Errorf("%s: %+v", s.Domain, s)
				continue
			}
			var learned []string
			for _, r := range s.Session[0].Learned {
				learned = append(learned, r.Prefix.String()+" via "+r.Via.String())
			}
			slices.Sort(learned)
			w := map[string][]string{aPriv: {"10.2.0.0/24 via 10.254.0.2"}, aHost: {"10.2.0.0/24 via 10.254.0.2", "10.66.2.0/24 via 10.254.0.2"}}[s.Domain]
			if !slices.Equal(learned, w) {
				t.Errorf("%s learned %v, want %v", s.Domain, learned, w)
			}
		}
	})

	// tunroute's plan and apply leave learned routes alone; explain
	// shows them.
	t.Run("plan apply explain", func(t *testing.T) {
		e.planEmpty(cfgA, siteA)
		if out, code := e.tr("apply", "-c", cfgA, "--netns", siteA); code != 0 {
			t.Fatalf("apply again: exit %d\n%s", code, out)
		}
		if got := e.learned(aPriv); !slices.Equal(got, want[aPriv]) {
			t.Errorf("after plan and apply, learned routes in a-private: %v", got)
		}
		// explain sees them: the far private host goes by the
		// learned route into the private overlay.
		out, code := e.tr("explain", "--netns", aPriv, "--json", "to", "10.2.0.1", "from", "10.1.0.1")
		if code != 0 || !strings.Contains(out, `"dev":"vxp"`) || !strings.Contains(out, "10.2.0.0/24 via 10.254.0.2 dev vxp proto "+e.proto) {
			t.Errorf("tunroute explain --netns a-private to 10.2.0.1: exit %d\n%s", code, out)
		}
	})

	t.Run("reload", func(t *testing.T) {
		cfg := e.config("site-a2.yaml", "site.yaml", map[string]any{"Site": "a", "Me": 1, "Other": 2, "MaxPrefixes": maxPrefixes + 1, "KillSwitch": false, "Engine": e.engine})
		changes, err := e.bgp.Changes(speakersOf(t, cfg, siteA), siteA)
		if err != nil || len(changes) != 1 || changes[0].Action != bgp.ActionReload || changes[0].Netns != aPriv {
			t.Fatalf("changes after a new max_prefixes: %v %v", changes, err)
		}
		if err := e.bgp.Apply(ctx, changes); err != nil {
			t.Fatal(err)
		}
		e.startBGP(cfgA, siteA) // back
		// (FRR restarts bgpd: the session comes up again.)
		if _, err := e.waitRoutes(aPriv, want[aPriv], 30*time.Second); err != nil {
			t.Errorf("after two reloads: %v", err)
		}
	})

	t.Run("kill switch", func(t *testing.T) {
		killSwitch(t, e, cfgA, siteA, aPriv, bPriv, maxPrefixes, want[aPriv])
	})

	t.Run("link cut", func(t *testing.T) {
		convergence(t, e, siteA, aPriv, aHost, want)
	})

	t.Run("filters and max-prefix", func(t *testing.T) {
		attacker(t, e, bPriv, aPriv, maxPrefixes)
	})

	t.Run("stop leaves nothing", func(t *testing.T) {
		pids := birdPids(e.RunDir)
		// a-hostile's BIRD hangs (stopped): it can neither shut down
		// cleanly nor withdraw its routes; Stop must kill it and remove
		// what it left in the kernel.
		if got := e.learned(aHost); !slices.Equal(got, want[aHost]) {
			t.Fatalf("a-hostile's routes before the stop: %v", got)
		}
		hung := firstPid(e.RunDir, aHost)
		if hung == 0 || syscall.Kill(hung, syscall.SIGSTOP) != nil {
			t.Fatalf("cannot stop a-hostile's daemon (pid %d)", hung)
		}
		for _, top := range []string{siteA, siteB} {
			start := time.Now()
			out, code, err := e.run(e.Bin, "--run-dir", e.RunDir, "down", "--netns", top)
			if err != nil || code != 0 || !strings.Contains(out, "stop the BGP speaker") {
				t.Fatalf("tunroute down --netns %s: exit %d, %v\n%s", top, code, err, out)
			}
			t.Logf("tunroute down %s (speakers stopped first): %s", top, time.Since(start).Round(time.Millisecond))
		}
		// down deleted the domains' namespaces: nothing of theirs is left.
		for _, ns := range []string{aPriv, aHost, bPriv, bHost} {
			if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
				t.Errorf("%s: the domain's namespace is left after tunroute down", ns)
			}
		}
		if entries, err := os.ReadDir(filepath.Join(e.RunDir, "bgp")); !os.IsNotExist(err) {
			t.Errorf("run directory left: %v %v", entries, err)
		}
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil && !zombie(pid) {
				t.Errorf("daemon pid %d still runs", pid)
			}
		}
		if st, _ := e.bgp.Status(ctx, siteA); len(st) != 0 {
			t.Errorf("status after stop: %+v", st)
		}
	})
}

// convergence cuts the underlay between the sites (ul0 down in site a)
// and measures, in a-private (BFD, 100 ms x 3) and a-hostile (no BFD,
// hold time 3 s), the time until the far site's routes are withdrawn
// from the kernel; then restores the link and measures the time until
// they are back.
func convergence(t *testing.T, e *env, siteA, aPriv, aHost string, want map[string][]string) {
	cut := time.Now()
	e.ip(siteA, "link", "set", "ul0", "down")
	gone := map[string]time.Duration{}
	for time.Since(cut) < 20*time.Second && len(gone) < 2 {
		for _, ns := range []string{aPriv, aHost} {
			if _, done := gone[ns]; !done && len(e.learned(ns)) == 0 {
				gone[ns] = time.Since(cut)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(gone) < 2 {
		t.Errorf("after a link cut, routes still there after 20 s: %v", gone)
	}
	t.Logf("FIGURE %s: link cut -> routes withdrawn: private (BFD 100 ms x %d) %s, hostile (hold timer 3 s) %s",
		e.engine, 3, gone[aPriv].Round(time.Millisecond), gone[aHost].Round(time.Millisecond))
	if gone[aPriv] > gone[aHost] {
		t.Errorf("BFD (%s) slower than the hold timer (%s)", gone[aPriv], gone[aHost])
	}
	restored := time.Now()
	e.ip(siteA, "link", "set", "ul0", "up")
	var back [2]time.Duration
	for i, ns := range []string{aPriv, aHost} {
		if _, err := e.waitRoutes(ns, want[ns], 30*time.Second); err != nil {
			t.Fatal(err)
		}
		back[i] = time.Since(restored)
	}
	t.Logf("FIGURE %s: link restored -> routes back: private %s, hostile %s (BIRD waits 5 s after a session error; FRR retries at once)", e.engine,
		back[0].Round(time.Millisecond), back[1].Round(time.Millisecond))
}

// attacker replaces b-private's speaker by a hand-written BIRD that
// announces, besides its own 10.2.0.0/24, hostile's range 10.66.2.0/24,
// a default route, a more specific of a-private's own range
// (10.1.0.0/25) and of its own (10.2.0.128/25): a-private must take only
// 10.2.0.0/24. Then it floods more routes than max_prefixes: a-private
// must tear the session down and withdraw what it learned.
func attacker(t *testing.T, e *env, bPriv, aPriv string, maxPrefixes int) {
	ctx := context.Background()
	if err := e.bgp.Stop(ctx, bPriv); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf, sock, pidFile := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl"), filepath.Join(dir, "bird.pid")
	routes := []string{"10.2.0.0/24", "10.66.2.0/24", "0.0.0.0/0", "10.1.0.0/25", "10.2.0.128/25"}
	write := func(routes []string) {
		var b strings.Builder
		fmt.Fprintf(&b, "router id 10.254.0.2;\nprotocol device {}\nprotocol static hijack {\n  ipv4;\n")
		for _, r := range routes {
			fmt.Fprintf(&b, "  route %s blackhole;\n", r)
		}
		fmt.Fprintf(&b, "}\nprotocol bfd { interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; }; }\n")
		fmt.Fprintf(&b, "protocol bgp twin {\n  local 10.254.0.2 as 64502;\n  neighbor 10.254.0.1 as 64501;\n  bfd on;\n  connect retry time 1;\n  ipv4 { import none; export all; };\n}\n")
		if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(routes)
	if out, code, err := e.run("ip", "netns", "exec", bPriv, "bird", "-c", conf, "-s", sock, "-P", pidFile); err != nil || code != 0 {
		t.Fatalf("attacker bird: %d %v\n%s", code, err, out)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	// The session comes up; only the legitimate prefix is taken (polled
	// until the engine has sorted every route received).
	wantLearned, wantRefused := []string{"10.2.0.0/24"}, []string{"0.0.0.0/0", "10.1.0.0/25", "10.2.0.128/25", "10.66.2.0/24"}
	var learned, refused []string
	if err := poll(30*time.Second, func() (bool, string) {
		sess := e.session(aPriv)
		learned, refused = prefixes(sess.Learned), prefixes(sess.Refused)
		ok := sess.Established() && slices.Equal(learned, wantLearned) && slices.Equal(refused, wantRefused)
		return ok, fmt.Sprintf("%+v", sess)
	}); err != nil {
		t.Errorf("a-private's session with the attacker: %v", err)
	}
	if got := e.learned(aPriv); !slices.Equal(got, []string{"10.2.0.0/24 dev vxp"}) {
		t.Errorf("learned routes in a-private with the attacker: %v", got)
	}
	// The hijack of a-private's own range is not used ("Network is
	// unreachable" is right: only 10.1.0.1 itself is there).
	if out, _, _ := e.run("ip", "-n", aPriv, "route", "get", "10.1.0.5"); strings.Contains(out, "vxp") {
		t.Errorf("a-private sends its own range to the attacker: %s", out)
	}

	// The flood: four times max_prefixes.
	flood := append([]string(nil), routes...)
	for i := 1; len(flood) < 4*maxPrefixes; i++ {
		flood = append(flood, fmt.Sprintf("10.2.%d.0/24", i))
	}
	write(flood)
	if out, code, err := e.run("birdc", "-s", sock, "configure"); err != nil || code != 0 {
		t.Fatalf("attacker birdc configure: %d %v\n%s", code, err, out)
	}
	if e.engine == "frr" {
		// FRR 8.4 counts refused routes against maximum-prefix
		// ("force") when the session starts, not when they arrive in
		// later updates (seen here: 21 refused routes sent as updates
		// kept the session up, and 7 at a session start with a limit of
		// 6 did too); the attacker reconnects.
		if out, code, err := e.run("birdc", "-s", sock, "restart", "twin"); err != nil || code != 0 {
			t.Fatalf("attacker birdc restart: %d %v\n%s", code, err, out)
		}
	}
	breach := time.Now()
	var sess bgp.Session
	if err := poll(15*time.Second, func() (bool, string) {
		sess = e.session(aPriv)
		got := e.learned(aPriv)
		return sess.State == "down" && len(got) == 0, fmt.Sprintf("session %+v, routes %v", sess, got)
	}); err != nil {
		t.Fatalf("after %d routes (max_prefixes %d): %v", len(flood), maxPrefixes, err)
	}
	t.Logf("FIGURE %s: max-prefix breach (%d routes, limit %d) -> session torn down, routes withdrawn in %s; state %q %q",
		e.engine, len(flood), maxPrefixes, time.Since(breach).Round(time.Millisecond), sess.State, sess.Info)
	// It stays down (action disable) while the attacker keeps trying.
	time.Sleep(3 * time.Second)
	if sess = e.session(aPriv); sess.State != "down" || len(e.learned(aPriv)) != 0 {
		t.Errorf("the session came back: %+v %v", sess, e.learned(aPriv))
	}
}

// session is the one session of the speaker in netns (zero if none).
func (e *env) session(netns string) bgp.Session {
	st, err := e.bgp.Status(context.Background(), e.NS("a"))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		if s.Netns == netns && len(s.Session) == 1 {
			return s.Session[0]
		}
	}
	return bgp.Session{}
}

func prefixes(rs []bgp.LearnedRoute) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Prefix.String())
	}
	slices.Sort(out)
	return out
}

// poll calls f until it reports done, or fails with f's last word after
// limit.
func poll(limit time.Duration, f func() (bool, string)) error {
	deadline := time.Now().Add(limit)
	for {
		done, last := f()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %s", limit, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// firstPid is the pid of the first daemon of the instance in netns
// (bird, or FRR's bgpd), 0 if none.
func firstPid(runDir, netns string) int {
	for _, f := range []string{"bird.pid", "bgpd.pid"} {
		b, _ := os.ReadFile(filepath.Join(runDir, "bgp", netns, f))
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			return pid
		}
	}
	return 0
}

// birdPids lists the pids in the instances' pid files under runDir.
func birdPids(runDir string) []int {
	files, _ := filepath.Glob(filepath.Join(runDir, "bgp", "*", "*.pid"))
	var out []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// killSwitch puts a kill switch on a-private (its only exceptions: the
// far site's range and the declared BGP session) and attacks it from
// inside: TCP 179 to an undeclared address and another port to the
// declared peer must be dropped, while the session itself still comes
// up (restarted under the kill switch). Each attempt first succeeds
// without the kill switch, so a failure is the kill switch's doing.
func killSwitch(t *testing.T, e *env, cfgA, siteA, aPriv, bPriv string, maxPrefixes int, want []string) {
	// An undeclared address pair on the same link, and a service on
	// the peer at another port.
	e.ip(aPriv, "addr", "add", "10.254.1.1/24", "dev", "vxp")
	e.ip(bPriv, "addr", "add", "10.254.1.2/24", "dev", "vxp")
	srv, err := lab.ListenEcho(bPriv, 7002)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	declared, undeclared := netip.MustParseAddr("10.254.0.1"), netip.MustParseAddr("10.254.1.1")
	attempts := []struct {
		what string
		src  netip.Addr
		dst  string
	}{
		{"TCP 179 to an undeclared address", undeclared, "10.254.1.2:179"},
		{"TCP 179 from the session's address to an undeclared one", declared, "10.254.1.2:179"},
		{"another port of the declared peer", declared, "10.254.0.2:7002"},
	}
	for _, a := range attempts {
		if err := dial(aPriv, a.src, a.dst); err != nil {
			t.Fatalf("without a kill switch, %s (%s -> %s): %v", a.what, a.src, a.dst, err)
		}
	}
	cfgKS := e.config("site-a-ks.yaml", "site.yaml", map[string]any{"Site": "a", "Me": 1, "Other": 2, "MaxPrefixes": maxPrefixes, "KillSwitch": true, "Engine": e.engine})
	e.apply(cfgKS, siteA)
	defer e.apply(cfgA, siteA)
	for _, a := range attempts {
		if err := dial(aPriv, a.src, a.dst); err == nil {
			t.Errorf("the kill switch let through %s (%s -> %s)", a.what, a.src, a.dst)
		}
	}
	if err := dial(aPriv, declared, "10.254.0.2:179"); err != nil {
		t.Errorf("the kill switch blocks the declared session: %v", err)
	}
	// The session restarted under the kill switch comes back.
	restart := []string{"birdc", "-s", filepath.Join(e.RunDir, "bgp", aPriv, "bird.ctl"), "restart", "twin"}
	if e.engine == "frr" {
		restart = []string{"vtysh", "--vty_socket", filepath.Join(e.RunDir, "bgp", aPriv), "-c", "clear bgp ipv4 unicast 10.254.0.2"}
	}
	if out, code, err := e.run(restart...); err != nil || code != 0 {
		t.Fatalf("%v: %d %v %s", restart, code, err, out)
	}
	restarted := time.Now()
	if _, err := e.waitRoutes(aPriv, nil, 5*time.Second); err != nil {
		t.Logf("routes kept over the restart: %v", err)
	}
	if _, err := e.waitRoutes(aPriv, want, 30*time.Second); err != nil {
		t.Errorf("under the kill switch: %v", err)
	}
	t.Logf("session restarted under the kill switch, routes back in %s", time.Since(restarted).Round(time.Millisecond))
	e.ip(aPriv, "addr", "del", "10.254.1.1/24", "dev", "vxp")
	e.ip(bPriv, "addr", "del", "10.254.1.2/24", "dev", "vxp")
}

// dial opens a TCP connection from src in namespace ns to dst, with a
// short timeout (a dropped SYN is a timeout), and closes it.
func dial(ns string, src netip.Addr, dst string) error {
	return lab.Do(ns, func() error {
		d := net.Dialer{Timeout: 700 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err := d.Dial("tcp", dst)
		if err != nil {
			return err
		}
		return c.Close()
	})
}
