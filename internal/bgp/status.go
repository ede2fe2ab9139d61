package bgp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/tunroute/tunroute/internal/config"
)

// InstanceStatus is what `status` shows of one domain's BGP speaker.
type InstanceStatus struct {
	Domain  string    `json:"domain"`
	Netns   string    `json:"netns"`
	Engine  string    `json:"engine"`
	Running bool      `json:"running"`
	PID     int       `json:"pid,omitempty"`
	Error   string    `json:"error,omitempty"`
	Session []Session `json:"sessions,omitempty"`
}

// Session is one BGP session and the routes learned on it.
type Session struct {
	Name string `json:"name"`
	// State is up, start (trying) or down (stopped, e.g. by a
	// max-prefix breach), BIRD's words (FRR's are mapped to them); Info
	// is the engine's own detail (Established, Active, "Automatic
	// shutdown: Route limit exceeded", "Idle (PfxCt)"...).
	State string `json:"state"`
	Info  string `json:"info,omitempty"`
	Since string `json:"since,omitempty"`
	// Learned are the accepted routes; Refused those the filters
	// rejected (kept to be shown and counted, never used).
	Learned []LearnedRoute `json:"learned,omitempty"`
	Refused []LearnedRoute `json:"refused,omitempty"`
}

// Established reports whether the session is up and exchanging routes.
func (s Session) Established() bool {
	return s.State == "up" && strings.HasPrefix(s.Info, "Established")
}

// LearnedRoute is a route received from a neighbour.
type LearnedRoute struct {
	Prefix netip.Prefix `json:"prefix"`
	Via    netip.Addr   `json:"via,omitzero"`
	Dev    string       `json:"dev,omitempty"`
	ASPath string       `json:"as_path,omitempty"`
}

// Status reports every instance of the top namespace top: whether it
// runs, its sessions and the routes learned and refused on each.
func (m *Manager) Status(ctx context.Context, top string) ([]InstanceStatus, error) {
	ins, err := m.instances(top)
	if err != nil {
		return nil, err
	}
	var out []InstanceStatus
	for _, in := range ins {
		st := InstanceStatus{Domain: in.Domain, Netns: in.Netns, Engine: in.Engine}
		st.PID, st.Running = m.running(in)
		if !st.Running {
			st.PID = 0
			out = append(out, st)
			continue
		}
		ss, err := in.engine().sessions(ctx, m, in)
		if err != nil {
			st.Error = err.Error()
		}
		st.Session = ss
		out = append(out, st)
	}
	return out, nil
}

// parseProtocols reads the BGP lines of `birdc show protocols`:
//
//	Name       Proto      Table      State  Since         Info
//	pipe_rb    BGP        ---        up     12:00:03.000  Established
func parseProtocols(b []byte) []Session {
	var out []Session
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[1] != "BGP" {
			continue
		}
		s := Session{Name: f[0], State: f[3], Since: f[4]}
		if len(f) > 5 {
			s.Info = strings.Join(f[5:], " ")
		}
		out = append(out, s)
	}
	return out
}

// parseRoutes reads `birdc show route` output:
//
//	Table master4:
//	10.2.0.0/24          unicast [pipe_rb 12:00:04.000] * (100) [AS64502i]
//		via 10.250.0.2 on rb
func parseRoutes(b []byte) []LearnedRoute {
	var out []LearnedRoute
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) > 0 && f[0] == "via" && len(f) >= 2 {
				r := &out[len(out)-1]
				if a, err := netip.ParseAddr(f[1]); err == nil && !r.Via.IsValid() {
					r.Via = a
				}
				if len(f) >= 4 && f[2] == "on" && r.Dev == "" {
					r.Dev = f[3]
				}
			}
			continue
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			continue // "BIRD ... ready.", "Table master4:"
		}
		r := LearnedRoute{Prefix: p}
		if i := strings.LastIndex(line, "[AS"); i >= 0 {
			r.ASPath = strings.TrimSuffix(line[i+3:], "]")
		}
		out = append(out, r)
	}
	return out
}

// StatusText renders instances for `tunroute status`: per domain the
// instance, each session's state, and the routes learned and refused.
func StatusText(sts []InstanceStatus) string {
	var b strings.Builder
	for _, st := range sts {
		where := "routing domain " + st.Domain
		if st.Domain == config.HostDomain {
			where = "the top namespace"
		}
		if !st.Running {
			fmt.Fprintf(&b, "BGP in %s: not running\n", where)
			continue
		}
		name := map[string]string{"bird": "BIRD", "frr": "FRR"}[st.Engine]
		if name == "" {
			name = "BIRD"
		}
		fmt.Fprintf(&b, "BGP in %s: %s pid %d\n", where, name, st.PID)
		if st.Error != "" {
			fmt.Fprintf(&b, "  error: %s\n", st.Error)
		}
		for _, s := range st.Session {
			state := s.State
			if s.Info != "" {
				state += ", " + s.Info
			}
			fmt.Fprintf(&b, "  session %s: %s since %s; %d learned, %d refused\n", s.Name, state, s.Since, len(s.Learned), len(s.Refused))
			for _, r := range s.Learned {
				fmt.Fprintf(&b, "    %s via %s", r.Prefix, r.Via)
				if r.Dev != "" {
					fmt.Fprintf(&b, " dev %s", r.Dev)
				}
				if r.ASPath != "" {
					fmt.Fprintf(&b, " [AS %s]", r.ASPath)
				}
				b.WriteString("\n")
			}
			for _, r := range s.Refused {
				fmt.Fprintf(&b, "    refused %s\n", r.Prefix)
			}
		}
	}
	return b.String()
}
