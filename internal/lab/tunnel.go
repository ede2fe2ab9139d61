package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Tunnel is the lab's VPN: wireguard-go devices in the client and the VPN
// server namespaces, run by this process.
type Tunnel struct {
	Client, Server *WG
}

// StartWireGuard starts the VPN between the client and the VPN server of a
// built lab, with fresh keys. The client's peer allows 0.0.0.0/0 and ::/0
// but the client gets no route through wg0 beyond its connected prefixes:
// routing into the tunnel is tunroute's job.
func (l *Lab) StartWireGuard(logf func(string, ...any)) (*Tunnel, error) {
	cpriv, err := GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	spriv, err := GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	server := WGConfig{
		NS: l.NS(VPNServer), Name: WGDevice, PrivateKey: spriv, ListenPort: WGPort,
		Addrs: []netip.Prefix{ServerWG4, ServerWG6},
		Peers: []WGPeer{{
			PublicKey:  cpriv.Public(),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(ClientWG4.Addr(), 32), netip.PrefixFrom(ClientWG6.Addr(), 128)},
		}},
	}
	client := WGConfig{
		NS: l.NS(Client), Name: WGDevice, PrivateKey: cpriv,
		Addrs: []netip.Prefix{ClientWG4, ClientWG6},
		Peers: []WGPeer{ClientPeer(spriv.Public())},
	}
	t := &Tunnel{}
	// The server first, so that the client's first handshake is answered.
	if t.Server, err = StartWireGuard(server, logf); err != nil {
		return nil, err
	}
	if t.Client, err = StartWireGuard(client, logf); err != nil {
		t.Server.Close()
		return nil, err
	}
	return t, nil
}

// ClientPeer is the client's view of the VPN server with that public key.
func ClientPeer(serverPub Key) WGPeer {
	return WGPeer{
		PublicKey:  serverPub,
		Endpoint:   netip.AddrPortFrom(ServerEth4.Addr(), WGPort),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
		Keepalive:  WGKeepalive,
	}
}

// Close stops both devices.
func (t *Tunnel) Close() {
	if t.Client != nil {
		t.Client.Close()
	}
	if t.Server != nil {
		t.Server.Close()
	}
}

// WaitHandshake waits until the client has completed a handshake with the
// server after the time since, and returns when it happened.
func (t *Tunnel) WaitHandshake(ctx context.Context, since time.Time) (time.Time, error) {
	return waitHandshake(ctx, since, func() ([]PeerStats, error) { return t.Client.Stats() })
}

func waitHandshake(ctx context.Context, since time.Time, get func() ([]PeerStats, error)) (time.Time, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		peers, err := get()
		if err != nil {
			return time.Time{}, err
		}
		for _, p := range peers {
			if !p.LastHandshake.IsZero() && !p.LastHandshake.Before(since) {
				return p.LastHandshake, nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no WireGuard handshake: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
