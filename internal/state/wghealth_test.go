package state

import (
	"testing"
	"time"
)

func TestWireGuardHealth(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := &State{Links: []Link{
		{Name: "eth0"},
		{Name: "wg0", WireGuard: &WireGuard{Peers: []WGPeer{
			{PublicKey: "fresh", Keepalive: 25, LastHandshake: now.Add(-30 * time.Second)},
			{PublicKey: "stale", Keepalive: 25, LastHandshake: now.Add(-200 * time.Second)},
			{PublicKey: "never", Keepalive: 25},
			{PublicKey: "quiet", LastHandshake: now.Add(-time.Hour)},
			{PublicKey: "quiet-never"},
		}}},
	}}
	want := map[string]string{"fresh": "up", "stale": "down", "never": "down", "quiet": "idle", "quiet-never": "idle"}
	got := WireGuardHealth(s, now)
	if len(got) != len(want) {
		t.Fatalf("%d peers: %v", len(got), got)
	}
	for _, h := range got {
		if h.Status != want[h.Peer] || h.Device != "wg0" {
			t.Errorf("%s: %s, want %s", h.Peer, h, want[h.Peer])
		}
	}
	if got[0].Age != 30*time.Second || got[0].String() != "wg0 peer fresh: up, latest handshake 30s ago" {
		t.Errorf("%q", got[0].String())
	}
}
