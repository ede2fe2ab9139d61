package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/netnsname"
	"github.com/tunroute/tunroute/internal/plan"
	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/statetest"
)

// memHost is a machine in memory: namespaces with fixed contents, files,
// and a log of every change asked of it, in the plan's effect words. It
// can fail the Nth change, to test rollback at every step.
type memHost struct {
	nss    map[string]*state.State
	owners map[string]string // domain namespace -> owner mark
	files  map[string][]byte
	log    []string
	// failAt fails the failAt-th change (1-based; 0: never).
	failAt, n int
}

var errInjected = errors.New("injected failure")

func newMemHost(top *state.State) *memHost {
	return &memHost{nss: map[string]*state.State{"": top}, owners: map[string]string{}, files: map[string][]byte{}}
}

// change counts one change and fails it if it is the chosen one.
func (h *memHost) change(effect string) error {
	h.n++
	if h.n == h.failAt {
		return fmt.Errorf("%s: %w", effect, errInjected)
	}
	h.log = append(h.log, effect)
	return nil
}

func (h *memHost) Open(ns string) (Handle, error) {
	if _, ok := h.nss[ns]; !ok {
		return nil, fmt.Errorf("namespace %q does not exist", ns)
	}
	return &memHandle{h: h, ns: ns}, nil
}

func (h *memHost) CurrentNamespace() (string, error) { return "", nil }

func (h *memHost) NamespaceOwner(name string) (string, error) { return h.owners[name], nil }

func (h *memHost) ListNamespaces() ([]string, error) {
	var out []string
	for n := range h.nss {
		if n != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

func (h *memHost) DomainNamespaces(top string) ([]string, error) {
	var out []string
	for n, o := range h.owners {
		if o == netnsname.Name(top).Owner() {
			out = append(out, n)
		}
	}
	return out, nil
}

func (h *memHost) CreateNamespace(name, top string) error {
	if err := h.change("create namespace " + name); err != nil {
		return err
	}
	h.nss[name] = &state.State{Version: state.Version, Namespace: name,
		Links: []state.Link{{Index: 1, Name: "lo", Up: true, Loopback: true}}}
	h.owners[name] = netnsname.Name(top).Owner()
	return nil
}

func (h *memHost) DeleteNamespace(name, top string) error {
	if err := h.change("delete namespace " + name); err != nil {
		return err
	}
	delete(h.nss, name)
	delete(h.owners, name)
	return nil
}

func (h *memHost) MoveLink(dev, from, to string) error {
	return h.change(plan.MoveEffect(dev, from, to))
}

func (h *memHost) SetSysctls(ns string, values map[string]string) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := h.change(plan.SysctlEffect(ns, k, values[k])); err != nil {
			return err
		}
	}
	return nil
}

func (h *memHost) ReadFile(path string) ([]byte, error) { return h.files[path], nil }

func (h *memHost) WriteFile(path string, data []byte, perm uint32) error {
	if err := h.change(plan.FileEffect(path, data)); err != nil {
		return err
	}
	if data == nil {
		delete(h.files, path)
	} else {
		h.files[path] = data
	}
	return nil
}

type memHandle struct {
	h  *memHost
	ns string
}

func (m *memHandle) Observe(compact bool) (*state.State, error) { return m.h.nss[m.ns], nil }

func (m *memHandle) Execute(ops []state.Op) ([]bool, error) {
	applied := make([]bool, len(ops))
	for i, op := range ops {
		if err := m.h.change(plan.OpEffect(m.ns, op)); err != nil {
			return applied, err
		}
		applied[i] = true
	}
	return applied, nil
}

func (m *memHandle) SetProgress(func(done, total int)) {}
func (m *memHandle) Close() error                      { return nil }

// labClient is a host with a LAN uplink and a VPN tunnel up (the lab's
// client), and the devices the test configs move into domains: tun0 (a
// second tunnel), dtvpn0 (with addresses) and dtmv0.
func labClient() *state.State {
	p := netip.MustParsePrefix
	s := statetest.LabClient()
	s.Namespace = ""
	s.Links = append(s.Links, state.Link{Index: 4, Name: "tun0", Kind: "tun", Up: true, Carrier: true, PointToPoint: true})
	for i, name := range strings.Fields("dtvpn0 dtmv0") {
		s.Links = append(s.Links, state.Link{Index: 5 + i, Name: name, Kind: "veth", Up: true, Carrier: true})
	}
	s.Addrs = append(s.Addrs,
		state.Addr{Dev: "tun0", Index: 4, Prefix: p("10.8.0.2/24"), Scope: state.ScopeUniverse},
		state.Addr{Dev: "dtvpn0", Index: 5, Prefix: p("10.99.0.2/24"), Scope: state.ScopeUniverse},
		state.Addr{Dev: "dtvpn0", Index: 5, Prefix: p("2001:db8:99::2/64"), Scope: state.ScopeUniverse})
	s.Routes = append(s.Routes,
		state.Route{Table: 254, Type: state.RouteUnicast, Dst: p("10.99.0.0/24"), Protocol: 2, Scope: state.ScopeLink, PrefSrc: netip.MustParseAddr("10.99.0.2"), Nexthops: statetest.Nexthops("", "dtvpn0")},
		state.Route{Table: 254, Type: state.RouteUnicast, Dst: p("2001:db8:99::/64"), Protocol: 2, Metric: 256, Nexthops: statetest.Nexthops("", "dtvpn0")})
	return s
}
