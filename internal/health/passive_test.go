package health

import (
	"reflect"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/state"
)

func TestWireGuardDown(t *testing.T) {
	now := t0
	obs := &state.State{Links: []state.Link{
		{Name: "wg0", WireGuard: &state.WireGuard{Peers: []state.WGPeer{{PublicKey: "A", Keepalive: 25, LastHandshake: now.Add(-200 * time.Second)}}}},
		{Name: "wg1", WireGuard: &state.WireGuard{Peers: []state.WGPeer{{PublicKey: "B", Keepalive: 25, LastHandshake: now.Add(-30 * time.Second)}}}},
		{Name: "wg2", WireGuard: &state.WireGuard{Peers: []state.WGPeer{{PublicKey: "C"}}}}, // idle: says nothing
		{Name: "eth0"},
	}}
	ids := []compile.Identity{{Name: "a", Device: "wg0"}, {Name: "b", Device: "wg1"}, {Name: "c", Device: "wg2"}, {Name: "isp", Device: "eth0"}}
	got := WireGuardDown(obs, ids, now)
	if len(got) != 1 || got["a"] == "" {
		t.Fatalf("got %v, want only a", got)
	}
	h := WithPassive(map[string]bool{"a": true, "b": true, "isp": false}, got)
	if !reflect.DeepEqual(h, map[string]bool{"a": false, "b": true, "isp": false}) {
		t.Errorf("merged: %v", h)
	}
}
