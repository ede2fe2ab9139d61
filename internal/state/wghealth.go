package state

import (
	"fmt"
	"time"
)

// WireGuard's session timers (the protocol's REKEY_AFTER_TIME and
// REJECT_AFTER_TIME): a session in use is renewed by a handshake every
// two minutes, and a session is dead three minutes after its handshake.
const (
	WGRekeyAfter  = 120 * time.Second
	WGRejectAfter = 180 * time.Second
)

// WGPeerHealth is the health of one peer of a WireGuard device, from the
// age of its latest handshake.
type WGPeerHealth struct {
	Device string `json:"device"`
	Peer   string `json:"peer"`
	// LastHandshake is zero when there was none.
	LastHandshake time.Time `json:"latest_handshake,omitzero"`
	// Age is now minus LastHandshake (0 when there was none).
	Age time.Duration `json:"age_ns,omitempty"`
	// Status is "up" (a session younger than WGRejectAfter), "down" (a
	// peer that should be talking: it has a persistent keepalive, yet its
	// session is older than that, or it never had one), or "idle" (no
	// keepalive and no recent handshake: WireGuard is silent until there
	// is traffic, so nothing is known).
	Status string `json:"status"`
}

func (h WGPeerHealth) String() string {
	switch {
	case h.LastHandshake.IsZero():
		return fmt.Sprintf("%s peer %s: %s, no handshake yet", h.Device, h.Peer, h.Status)
	default:
		return fmt.Sprintf("%s peer %s: %s, latest handshake %s ago", h.Device, h.Peer, h.Status, h.Age.Round(time.Second))
	}
}

// WireGuardHealth reports, for every peer of every WireGuard device of an
// observed state, how old its latest handshake is and what that says.
func WireGuardHealth(s *State, now time.Time) []WGPeerHealth {
	var out []WGPeerHealth
	for i := range s.Links {
		l := &s.Links[i]
		if l.WireGuard == nil {
			continue
		}
		for _, p := range l.WireGuard.Peers {
			h := WGPeerHealth{Device: l.Name, Peer: p.PublicKey, LastHandshake: p.LastHandshake}
			if !p.LastHandshake.IsZero() {
				h.Age = now.Sub(p.LastHandshake)
			}
			switch {
			case !p.LastHandshake.IsZero() && h.Age <= WGRejectAfter:
				h.Status = "up"
			case p.Keepalive > 0:
				h.Status = "down"
			default:
				h.Status = "idle"
			}
			out = append(out, h)
		}
	}
	return out
}
