package health

import (
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/state"
)

// WireGuardDown is a passive signal: the identities whose device is a
// WireGuard device none of whose peers has had a handshake within the
// protocol's reject time (180 s) though at least one keeps the session
// alive (a peer without keepalive is silent when idle, and says nothing).
// The value says why.
func WireGuardDown(observed *state.State, ids []compile.Identity, now time.Time) map[string]string {
	peers := map[string][]state.WGPeerHealth{}
	for _, h := range state.WireGuardHealth(observed, now) {
		peers[h.Device] = append(peers[h.Device], h)
	}
	out := map[string]string{}
	for _, id := range ids {
		hs := peers[id.Device]
		if id.Down || len(hs) == 0 {
			continue
		}
		down, up := 0, 0
		for _, h := range hs {
			switch h.Status {
			case "down":
				down++
			case "up":
				up++
			}
		}
		if up == 0 && down > 0 {
			out[id.Name] = hs[0].String()
		}
	}
	return out
}

// WithPassive is the health map compile gets: the prober's verdicts, with
// the identities a passive signal (WireGuardDown) says are down.
func WithPassive(probed map[string]bool, passive map[string]string) map[string]bool {
	out := make(map[string]bool, len(probed)+len(passive))
	for k, v := range probed {
		out[k] = v
	}
	for k := range passive {
		out[k] = false
	}
	return out
}
