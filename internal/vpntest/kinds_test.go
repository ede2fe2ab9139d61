package vpntest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/labtest"
)

// The configs under test are the shipped examples for each daemon
// (examples/openvpn-route-noexec.yaml, examples/tinc-redirect.yaml): a
// full tunnel through the VPN with a kill switch, IPv4 and IPv6, the LAN
// in clear, DNS only to the VPN's resolver; plus the port selectors
// (examples/telnet-ssh-selectors.yaml): telnet (23) through the tunnel,
// ssh (22) around it.
func selectBlock(tunnel string) string {
	return "\n# added by internal/vpntest: port selectors\nselect:\n" +
		"  - {proto: tcp, dport: 23, via: " + tunnel + "}\n" +
		"  - {proto: tcp, dport: 22, via: outside}\n"
}

var openvpnKind = &kind{
	name: "openvpn", short: "ovpn", prog: "openvpn",
	clientDev: labtest.OpenVPNClientDev,
	transport: []transport{{unix.IPPROTO_UDP, labtest.OpenVPNPort}},
	tunnel6:   true,
	dns:       labtest.OpenVPNServer4,
	example:   "openvpn-route-noexec.yaml",
	vpnName:   "work",
	tunnelID:  "inside",
	// OpenVPN restarts a lost connection: route-pre-down and down run.
	lostWithdraws: true,
	start: func(w *world) (daemons, error) {
		o, err := labtest.SetupOpenVPN(w.lab, labtest.OpenVPNConfig{
			Dir:    w.dir,
			Hook:   w.hookCommand("openvpn"),
			Setenv: map[string]string{"TUNROUTE_VPN": "work"}, // the example's vpn
		})
		if err != nil {
			return nil, err
		}
		return &ovpn{o, w}, nil
	},
}

var tincKind = &kind{
	name: "tinc", short: "tinc", prog: "tincd",
	clientDev: labtest.TincClientDev,
	transport: []transport{{unix.IPPROTO_UDP, labtest.TincPort}, {unix.IPPROTO_TCP, labtest.TincPort}},
	dns:       labtest.TincServer4.Addr(),
	example:   "tinc-redirect.yaml",
	vpnName:   "home",
	tunnelID:  "vpn",
	start: func(w *world) (daemons, error) {
		t, err := labtest.SetupTinc(w.lab, labtest.TincConfig{
			Dir:  w.dir,
			Hook: func(verb string) string { return w.hookCommand("tinc", verb) },
		})
		if err != nil {
			return nil, err
		}
		return &tinc{t}, nil
	},
}

// eachKind runs run for each daemon kind, in parallel subtests named
// after the kind.
func eachKind(t *testing.T, run func(*testing.T, *kind)) {
	for _, k := range []*kind{openvpnKind, tincKind} {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			run(t, k)
		})
	}
}

type ovpn struct {
	*labtest.OpenVPN
	w *world
}

func (o *ovpn) client() *labtest.Daemon { return o.Client }
func (o *ovpn) server() *labtest.Daemon { return o.Server }

func (o *ovpn) mark() int64 {
	if o.Client == nil {
		return 0
	}
	return o.Client.LogSize()
}

func (o *ovpn) waitUp(ctx context.Context, mark int64) error {
	return o.Client.WaitLog(ctx, mark, labtest.OpenVPNReady, "Failed running command")
}

// waitLost: OpenVPN restarts the connection (ping-restart), runs its
// route-pre-down and down scripts, and the hook records the VPN as down.
func (o *ovpn) waitLost(ctx context.Context, mark int64) error {
	if err := o.Client.WaitLog(ctx, mark, "ping-restart"); err != nil {
		return err
	}
	for !o.w.factsDown() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the down hook did not record the VPN as down: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	o.w.settle()
	return nil
}

func (o *ovpn) restart(ctx context.Context, t *testing.T) error {
	if o.Client != nil {
		o.Client.Stop(2 * time.Second)
	}
	return o.StartClient(ctx, true)
}

type tinc struct{ *labtest.Tinc }

// restart restarts the server too: tinc 1.0.36 does not cope with a
// client that reconnects several times within a second (the server
// sends it no data for many seconds, or segfaults on its REQ_KEY), which
// the scenarios here do; that is tinc's business, not tunroute's.
func (t *tinc) restart(ctx context.Context, tt *testing.T) error {
	if t.Client != nil {
		t.Client.Stop(2 * time.Second)
	}
	if t.Server.Exited() {
		tt.Logf("the tinc server had died: %s", t.Server.LogTail())
	}
	t.Server.Stop(2 * time.Second)
	if err := t.StartServer(ctx); err != nil {
		return err
	}
	return t.StartClient(ctx, true)
}

func (t *tinc) client() *labtest.Daemon { return t.Client }
func (t *tinc) server() *labtest.Daemon { return t.Server }
func (t *tinc) mark() int64             { return t.EventSize() }

func (t *tinc) waitUp(ctx context.Context, mark int64) error {
	return t.WaitEvent(ctx, mark, "host-up")
}

// waitLost: tinc's ping times out, it closes the connection and runs
// host-down, which the hook records.
func (t *tinc) waitLost(ctx context.Context, mark int64) error {
	return t.WaitEvent(ctx, mark, "host-down")
}
