// Package facts holds what tunroute learns at run time from VPN daemons'
// hooks: the tunnel device and its addresses, the gateway inside the
// tunnel, the server's real address and port, the original gateway, the
// resolvers the VPN pushes. A hook stores them; compile reads them.
//
// Files live under a runtime directory, one per VPN connection and
// network namespace: DIR/NAMESPACE/VPN.json ("host" for the initial
// namespace). They are written atomically (write, fsync, rename).
package facts

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tunroute/tunroute/internal/atomicfile"
	"github.com/tunroute/tunroute/internal/netnsname"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// DefaultDir is where hooks keep runtime facts.
const DefaultDir = "/run/tunroute/facts"

// VPN is what one connection's hook reported.
type VPN struct {
	// Name is the config's name for the connection.
	Name string `json:"name"`
	// Type is the daemon ("openvpn", "tinc").
	Type string `json:"type"`
	// Device is the tunnel interface.
	Device string `json:"device"`
	// Addrs are the local tunnel addresses with their prefix lengths
	// (empty when the daemon does not say, e.g. tinc).
	Addrs []netip.Prefix `json:"addrs,omitempty"`
	// Gateway4/Gateway6 are the next hops inside the tunnel, if any.
	Gateway4 netip.Addr `json:"gateway4,omitzero"`
	Gateway6 netip.Addr `json:"gateway6,omitzero"`
	// Servers are the VPN servers' real addresses and ports.
	Servers []Endpoint `json:"servers,omitempty"`
	// OrigGateway4 is the gateway the daemon found for the server
	// (OpenVPN's route_net_gateway).
	OrigGateway4 netip.Addr `json:"orig_gateway4,omitzero"`
	// DNS are the resolvers the VPN pushes.
	DNS []netip.Addr `json:"dns,omitempty"`
	// Routes are networks the VPN pushes (route_network_N, route_ipv6_network_N).
	Routes []netip.Prefix `json:"routes,omitempty"`
	// Selectors are the traffic-selector pairs up now ("MY=PEER", e.g.
	// "10.40.0.1/32=0.0.0.0/0"), for daemons that report one call per
	// pair (strongSwan): the connection is down when none is left.
	Selectors []string `json:"selectors,omitempty"`
	// Down is set when the connection went down: the identity goes out of
	// use, but Servers are kept so the kill switch still lets the daemon
	// reach its server and come back.
	Down bool `json:"down,omitempty"`
	// Updated is when the hook wrote the facts.
	Updated time.Time `json:"updated"`
}

// Endpoint is a server's real address with its port and protocol.
type Endpoint struct {
	Addr  netip.Addr `json:"addr"`
	Port  uint16     `json:"port,omitempty"`
	Proto string     `json:"proto,omitempty"` // "udp", "tcp", "esp" (IPsec, no port), or "" for any
}

// Store is the facts directory of one namespace.
type Store struct {
	dir string
}

var nsName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Open returns the store for a namespace ("" is the initial one) under
// base (DefaultDir if empty).
func Open(base, netns string) (*Store, error) {
	if base == "" {
		base = DefaultDir
	}
	if err := netnsname.Check(netns); err != nil {
		return nil, fmt.Errorf("facts directory: %w", err)
	}
	return &Store{dir: filepath.Join(base, netnsname.Name(netns).Key())}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path is the file that holds a VPN's facts.
func (s *Store) Path(vpn string) string { return filepath.Join(s.dir, vpn+".json") }

// Encode renders a VPN's facts as the store keeps them.
func Encode(v *VPN) ([]byte, error) {
	if !nsName.MatchString(v.Name) {
		return nil, fmt.Errorf("vpn name %q is not usable as a file name", v.Name)
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Put stores the facts of one VPN, replacing what was there (written
// atomically: write, fsync, rename).
func (s *Store) Put(v *VPN) error {
	data, err := Encode(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(s.Path(v.Name), data, 0o600)
}

// Remove forgets a VPN's facts (it went down). Removing what is not
// there is fine.
func (s *Store) Remove(vpn string) error {
	err := os.Remove(s.Path(vpn))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// All loads every VPN's facts, by name. A missing directory is no facts.
// A file that does not parse is an error naming it: a hook wrote it, so a
// broken one means something is wrong, and guessing would be worse.
func (s *Store) All() (map[string]*VPN, error) {
	out := map[string]*VPN{}
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var v VPN
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		if v.Name != name {
			return nil, fmt.Errorf("%s: holds the facts of %q, not %q", p, v.Name, name)
		}
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		out[name] = &v
	}
	return out, nil
}

var devName = regexp.MustCompile(`^[^/:\s\x00]{1,15}$`)

// Validate checks the facts are usable: a device name the kernel would
// accept, addresses of consistent families.
func (v *VPN) Validate() error {
	if !devName.MatchString(v.Device) || v.Device == "." || v.Device == ".." {
		return fmt.Errorf("device %q is not a valid interface name", v.Device)
	}
	if v.Gateway4.IsValid() && !v.Gateway4.Is4() {
		return fmt.Errorf("gateway4 %s is not IPv4", v.Gateway4)
	}
	if v.Gateway6.IsValid() && !v.Gateway6.Is6() {
		return fmt.Errorf("gateway6 %s is not IPv6", v.Gateway6)
	}
	if v.OrigGateway4.IsValid() && !v.OrigGateway4.Is4() {
		return fmt.Errorf("orig_gateway4 %s is not IPv4", v.OrigGateway4)
	}
	for _, e := range v.Servers {
		if !e.Addr.IsValid() {
			return errors.New("a server without an address")
		}
		if e.Proto != "" && e.Proto != "udp" && e.Proto != "tcp" && e.Proto != "esp" {
			return fmt.Errorf("server %s: protocol %q is not udp, tcp or esp", e.Addr, e.Proto)
		}
	}
	return nil
}
