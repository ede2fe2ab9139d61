package lab

import (
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DemoConfig is examples/lab-demo.yaml (kept identical by a test).
//
//go:embed demo.yaml
var DemoConfig []byte

// DemoOptions configures Demo.
type DemoOptions struct {
	Exe        string    // the tunroute binary run for plan, apply, status, down
	ServeCmd   *exec.Cmd // runs Serve; nil: Exe with ServeArgs
	ConfigPath string    // config to apply; empty: DemoConfig
	Keep       bool      // leave the lab up at the end
	Out        io.Writer
	CmdTimeout time.Duration // per tunroute command; 0: 60 s
}

// A check the demo makes.
type check struct {
	name string
	ok   bool
	msg  string
}

// Demo builds the lab, applies the demo config in the client namespace with
// the tunroute binary (plan, apply, status), proves the paths with real
// traffic, runs `tunroute down`, checks that the client's routing is back to
// what it was, and removes the lab unless Keep. It prints a PASS or FAIL
// line per check and returns an error if any check failed.
func (l *Lab) Demo(ctx context.Context, o DemoOptions) (err error) {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	if o.CmdTimeout == 0 {
		o.CmdTimeout = 60 * time.Second
	}
	p := func(f string, a ...any) { fmt.Fprintf(out, f+"\n", a...) }
	var checks []check
	record := func(name string, ok bool, f string, a ...any) bool {
		c := check{name, ok, fmt.Sprintf(f, a...)}
		checks = append(checks, c)
		word := "PASS"
		if !ok {
			word = "FAIL"
		}
		p("%s  %-12s %s", word, c.name, c.msg)
		return ok
	}

	cfg := o.ConfigPath
	if cfg == "" {
		f, err := os.CreateTemp("", "tunroute-lab-demo-*.yaml")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		if _, err := f.Write(DemoConfig); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		cfg = f.Name()
	}
	cfgName := cfg
	if o.ConfigPath == "" {
		cfgName += " (the built-in copy of examples/lab-demo.yaml)"
	}
	clientNS := l.NS(Client)
	serve := o.ServeCmd
	if serve == nil {
		serve = exec.Command(o.Exe, l.ServeArgs()...)
	}

	p("== lab up (namespaces %s{%s})", l.Prefix, strings.Join(Roles, ","))
	info, err := l.Up(ctx, serve)
	if err != nil {
		return err
	}
	p("   built in %v, serve process %d, WireGuard handshake after %s (ready after %v)",
		info.Build.Round(time.Millisecond), info.PID, info.Handshake, info.Serve.Round(time.Millisecond))
	defer func() {
		if o.Keep {
			p("== lab kept (--keep); tunroute's config was removed by the down check, apply it again with")
			p("   tunroute apply -c examples/lab-demo.yaml --netns %s", clientNS)
			p("   and remove the lab with `tunroute lab down%s`", l.prefixFlag())
			return
		}
		p("== lab down")
		if _, derr := l.Down(context.Background()); derr != nil {
			p("   %v", derr)
			err = errors.Join(err, derr)
		}
	}()

	inet4 := netip.AddrPortFrom(InetEth4.Addr(), EchoPort)
	inet6 := netip.AddrPortFrom(InetEth6.Addr(), EchoPort)
	if saw, err := Probe(ctx, clientNS, netip.Addr{}, inet4); err == nil {
		p("   before tunroute: client -> %s is seen as %s (the ISP path)", inet4, saw)
	} else {
		p("   before tunroute: client -> %s: %v", inet4, err)
	}
	before, err := routingSnapshot(clientNS)
	if err != nil {
		return err
	}
	p("   config: %s", cfgName)

	run := func(args ...string) (int, time.Duration) {
		p("== tunroute %s", strings.Join(args, " "))
		cctx, cancel := context.WithTimeout(ctx, o.CmdTimeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, o.Exe, args...)
		t := time.Now()
		b, err := cmd.CombinedOutput()
		d := time.Since(t)
		if s := strings.TrimRight(string(b), "\n"); s != "" {
			p("%s", indent(s, "   "))
		}
		code := 0
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			p("   %v", err)
			code = -1
		}
		p("   (exit %d, %v)", code, d.Round(time.Millisecond))
		return code, d
	}

	code, _ := run("plan", "-c", cfg, "--netns", clientNS)
	record("plan", code == 2, "exit %d, want 2 (changes pending)", code)
	code, d := run("apply", "-c", cfg, "--netns", clientNS)
	applied := record("apply", code == 0, "exit %d, want 0 (took %v)", code, d.Round(time.Millisecond))
	if applied {
		run("status", "-c", cfg, "--netns", clientNS)
		code, _ = run("plan", "-c", cfg, "--netns", clientNS)
		record("plan again", code == 0, "exit %d, want 0 (nothing left to do after apply)", code)
	}

	p("== traffic from the client to inet's echo server (port %d)", EchoPort)
	rx0 := l.serverRx()
	paths := []struct {
		src  netip.Addr
		dst  netip.AddrPort
		want netip.Addr
		why  string
	}{
		{netip.Addr{}, inet4, ServerEth4.Addr(), "through the VPN: gateway redirect"},
		{ClientEth4.Addr(), inet4, ClientEth4.Addr(), "outside identity, `ssh -b O` (dual identity): around the VPN"},
		{ClientWG4.Addr(), inet4, ServerEth4.Addr(), "inside identity: through the VPN"},
		{netip.Addr{}, inet6, ServerEth6.Addr(), "IPv6 through the VPN"},
		{ClientEth6.Addr(), inet6, ClientEth6.Addr(), "IPv6 outside identity: around the VPN"},
	}
	for i, pt := range paths {
		from := "no source"
		if pt.src.IsValid() {
			from = "from " + pt.src.String()
		}
		saw, err := Probe(ctx, clientNS, pt.src, pt.dst)
		name := fmt.Sprintf("path %d", i+1)
		if err != nil {
			record(name, false, "client -> %s (%s): %v; want inet to see %s (%s)", pt.dst, from, err, pt.want, pt.why)
			continue
		}
		record(name, saw == pt.want, "client -> %s (%s): inet saw %s, want %s (%s)", pt.dst, from, saw, pt.want, pt.why)
	}
	ok, msg := l.checkTunnel(ctx, rx0)
	record("path 6", ok, "%s", msg)

	code, _ = run("down", "--netns", clientNS)
	record("down", code == 0, "exit %d, want 0", code)
	after, err := routingSnapshot(clientNS)
	if err != nil {
		record("restored", false, "%v", err)
	} else if diff := diffLines(before, after); diff != "" {
		record("restored", false, "the client's routing differs from before apply:\n%s", indent(diff, "      "))
	} else {
		record("restored", true, "the client's addresses, routes (all tables) and rules equal those before apply (%d lines)", len(before))
	}

	failed := 0
	for _, c := range checks {
		if !c.ok {
			failed++
		}
	}
	if failed > 0 {
		p("RESULT: FAIL (%d of %d checks failed)", failed, len(checks))
		return fmt.Errorf("lab demo: %d of %d checks failed", failed, len(checks))
	}
	p("RESULT: PASS (%d checks)", len(checks))
	return nil
}

func (l *Lab) prefixFlag() string {
	if l.Prefix == DefaultPrefix {
		return ""
	}
	return " --prefix " + l.Prefix
}

// serverRx is the bytes the VPN server received from the client so far.
func (l *Lab) serverRx() uint64 {
	peers, err := l.PeerStats(VPNServer)
	if err != nil || len(peers) == 0 {
		return 0
	}
	return peers[0].RxBytes
}

// checkTunnel proves that WireGuard's own packets still reach the server
// now that the client routes (almost) everything into the tunnel: the
// client's route to the server's endpoint leaves through eth0, the server
// received data during the path checks, and a handshake forced now
// completes.
func (l *Lab) checkTunnel(ctx context.Context, rx0 uint64) (bool, string) {
	ep := ServerEth4.Addr()
	dev, err := RouteDev(l.NS(Client), ep)
	if err != nil {
		return false, fmt.Sprintf("route to the endpoint %s: %v", ep, err)
	}
	rx := l.serverRx()
	peers, err := l.PeerStats(Client)
	if err != nil || len(peers) != 1 {
		return false, fmt.Sprintf("client wg0: %v (peers %d)", err, len(peers))
	}
	var pub Key
	if b, err := hex.DecodeString(peers[0].PublicKey); err != nil || len(b) != len(pub) {
		return false, fmt.Sprintf("client wg0: bad peer key %q", peers[0].PublicKey)
	} else {
		copy(pub[:], b)
	}
	// Forget the session and start a new one: remove the peer and add it
	// back; with a persistent keepalive the device initiates at once. The
	// server ignores an initiation less than 20 ms after the previous one
	// (flood protection; its timestamps also have a 16 ms granularity), so
	// leave a gap after the last handshake.
	if gap := 100*time.Millisecond - time.Since(peers[0].LastHandshake); gap > 0 {
		time.Sleep(gap)
	}
	since := time.Now()
	if _, err := l.UAPI(Client, "set=1\npublic_key="+pub.Hex()+"\nremove=true\n\n"); err != nil {
		return false, err.Error()
	}
	cp := ClientPeer(pub)
	if _, err := l.UAPI(Client, "set=1\n"+cp.uapi()+"\n"); err != nil {
		return false, err.Error()
	}
	// One lost initiation is retried after 5 s (REKEY_TIMEOUT).
	hctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	hs, err := waitHandshake(hctx, since, func() ([]PeerStats, error) { return l.PeerStats(Client) })
	msg := fmt.Sprintf("WireGuard to %s:%d leaves by %s; server received %d bytes during the path checks", ep, WGPort, dev, rx-rx0)
	if err != nil {
		return false, msg + "; new handshake: " + err.Error()
	}
	msg += fmt.Sprintf("; new handshake in %v", hs.Sub(since).Round(time.Millisecond))
	return dev == "eth0" && rx > rx0, msg
}

// RouteDev is the output device the named namespace's kernel picks for
// dst (like `ip route get DST`).
func RouteDev(nsName string, dst netip.Addr) (string, error) {
	nh, err := NetlinkIn(nsName)
	if err != nil {
		return "", err
	}
	defer nh.Close()
	rs, err := nh.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "", errors.New("no route")
	}
	link, err := nh.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return link.Attrs().Name, nil
}

// routingSnapshot lists a namespace's addresses, routes of all tables and
// rules, one sorted line each, for comparing before and after.
func routingSnapshot(nsName string) ([]string, error) {
	nh, err := NetlinkIn(nsName)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	links, err := nh.LinkList()
	if err != nil {
		return nil, err
	}
	name := map[int]string{}
	for _, l := range links {
		name[l.Attrs().Index] = l.Attrs().Name
	}
	var lines []string
	addrs, err := nh.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		lines = append(lines, fmt.Sprintf("addr %s dev %s", a.IPNet, name[a.LinkIndex]))
	}
	routes, err := nh.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		s := fmt.Sprintf("route table %d type %d dst %v proto %d scope %d metric %d dev %s", r.Table, r.Type, r.Dst, r.Protocol, r.Scope, r.Priority, name[r.LinkIndex])
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if r.Src != nil {
			s += " src " + r.Src.String()
		}
		for _, nh := range r.MultiPath {
			s += fmt.Sprintf(" nexthop via %v dev %s", nh.Gw, name[nh.LinkIndex])
		}
		lines = append(lines, s)
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := nh.RuleList(fam)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			lines = append(lines, ruleLine(fam, r))
		}
	}
	sort.Strings(lines)
	return lines, nil
}

func ruleLine(fam int, r netlink.Rule) string {
	mask := "-"
	if r.Mask != nil {
		mask = fmt.Sprintf("%#x", *r.Mask)
	}
	s := fmt.Sprintf("rule family %d pref %d from %v to %v iif %q oif %q fwmark %#x/%s tos %d table %d goto %d type %d proto %d ipproto %d not %v suppress_prefixlength %d suppress_ifgroup %d",
		fam, r.Priority, r.Src, r.Dst, r.IifName, r.OifName, r.Mark, mask, r.Tos, r.Table, r.Goto, r.Type, r.Protocol, r.IPProto, r.Invert, r.SuppressPrefixlen, r.SuppressIfgroup)
	if r.Sport != nil {
		s += fmt.Sprintf(" sport %d-%d", r.Sport.Start, r.Sport.End)
	}
	if r.Dport != nil {
		s += fmt.Sprintf(" dport %d-%d", r.Dport.Start, r.Dport.End)
	}
	if r.UIDRange != nil {
		s += fmt.Sprintf(" uidrange %d-%d", r.UIDRange.Start, r.UIDRange.End)
	}
	return s
}

// diffLines shows the lines only in a ("-") and only in b ("+").
func diffLines(a, b []string) string {
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	var out []string
	for s, n := range count {
		for ; n > 0; n-- {
			out = append(out, "- "+s)
		}
		for ; n < 0; n++ {
			out = append(out, "+ "+s)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func indent(s, pre string) string {
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre)
}
