package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Write writes the state's JSON form, indented, with a final newline.
func (s *State) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// LoadFile reads and validates a snapshot file.
func LoadFile(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse decodes and validates a snapshot. Errors name the file and, for
// syntax and type errors, the line and column.
func Parse(data []byte, name string) (*State, error) {
	if s, ok := parseFast(data); ok {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return s, nil
	}
	return parseJSON(data, name)
}

// parseJSON is Parse with encoding/json alone: the reference the fast path
// must agree with, and the path for input outside its subset.
func parseJSON(data []byte, name string) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, jsonError(data, name, dec, err)
	}
	if dec.More() {
		line, col := lineCol(data, dec.InputOffset())
		return nil, fmt.Errorf("%s:%d:%d: unexpected data after the snapshot object", name, line, col)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &s, nil
}

func jsonError(data []byte, name string, dec *json.Decoder, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset)
		return fmt.Errorf("%s:%d:%d: %v", name, line, col, syn)
	case errors.As(err, &typ):
		line, col := lineCol(data, typ.Offset)
		return fmt.Errorf("%s:%d:%d: %s: cannot use %s as %s", name, line, col, typ.Field, typ.Value, typ.Type)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%s: empty snapshot", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: truncated snapshot", name)
	}
	// Unknown fields and bad names are reported after the fact; point at
	// the quoted word the message names, the last one before the offset.
	off := dec.InputOffset()
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		if j := strings.IndexByte(msg[i+1:], '"'); j >= 0 {
			word := msg[i : i+j+2]
			if k := bytes.LastIndex(data[:min(off, int64(len(data)))], []byte(word)); k >= 0 {
				off = int64(k)
			}
		}
	}
	line, col := lineCol(data, off)
	return fmt.Errorf("%s:%d:%d: %s", name, line, col, msg)
}

func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// Validate checks internal consistency: versions, families, and that every
// device named by an address, route or rule-independent object exists.
func (s *State) Validate() error {
	if s.Version != Version {
		return fmt.Errorf("version: got %d, this tunroute reads version %d", s.Version, Version)
	}
	names := make(map[string]bool, len(s.Links))
	indexes := make(map[int]bool, len(s.Links))
	for i, l := range s.Links {
		if l.Name == "" {
			return fmt.Errorf("links[%d]: name is empty", i)
		}
		if names[l.Name] {
			return fmt.Errorf("links[%d]: duplicate name %q", i, l.Name)
		}
		if l.Index <= 0 || indexes[l.Index] {
			return fmt.Errorf("links[%d] %s: index %d is not a unique positive number", i, l.Name, l.Index)
		}
		names[l.Name], indexes[l.Index] = true, true
	}
	for i, a := range s.Addrs {
		if !a.Prefix.IsValid() {
			return fmt.Errorf("addrs[%d]: prefix is missing", i)
		}
		if !names[a.Dev] {
			return fmt.Errorf("addrs[%d] %s: dev %q is not among links", i, a.Prefix, a.Dev)
		}
		if a.Peer.IsValid() && a.Peer.Addr().Is4() != a.Prefix.Addr().Is4() {
			return fmt.Errorf("addrs[%d] %s: peer %s is of the other family", i, a.Prefix, a.Peer)
		}
	}
	for i := range s.Routes {
		if err := s.Routes[i].validate(names); err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
	}
	for i := range s.RouteSets {
		rs := &s.RouteSets[i]
		for j, d := range rs.Dsts {
			if !d.IsValid() || d.Masked() != d {
				return fmt.Errorf("route_sets[%d].dsts[%d]: %s is not a prefix without host bits", i, j, d)
			}
			if j > 0 && d.Addr().Is4() != rs.Dsts[0].Addr().Is4() {
				return fmt.Errorf("route_sets[%d].dsts[%d]: %s is of the other family", i, j, d)
			}
		}
		if len(rs.Dsts) > 0 {
			r := rs.Route(rs.Dsts[0])
			if err := r.validate(names); err != nil {
				return fmt.Errorf("route_sets[%d]: %w", i, err)
			}
		}
	}
	for i := range s.Rules {
		if err := s.Rules[i].validate(); err != nil {
			return fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	return nil
}

func (r *Route) validate(links map[string]bool) error {
	if !r.Dst.IsValid() {
		return errors.New("dst is missing")
	}
	if r.Dst.Masked() != r.Dst {
		return fmt.Errorf("dst %s has host bits set", r.Dst)
	}
	if r.Src.IsValid() && (!r.Is6() || r.Src.Addr().Is4()) {
		return fmt.Errorf("%s: a source prefix exists only on IPv6 routes", r.Dst)
	}
	if r.PrefSrc.IsValid() && r.PrefSrc.Is4() != r.Dst.Addr().Is4() {
		return fmt.Errorf("%s: prefsrc %s is of the other family", r.Dst, r.PrefSrc)
	}
	if r.Type == 0 {
		return fmt.Errorf("%s: type is missing", r.Dst)
	}
	for j, nh := range r.Nexthops {
		if nh.Dev != "" && links != nil && !links[nh.Dev] {
			return fmt.Errorf("%s: nexthops[%d]: dev %q is not among links", r.Dst, j, nh.Dev)
		}
		if nh.Gateway.IsValid() && r.Is6() && nh.Gateway.Is4() {
			return fmt.Errorf("%s: nexthops[%d]: an IPv6 route cannot have IPv4 gateway %s", r.Dst, j, nh.Gateway)
		}
		if nh.Weight < 0 || nh.Weight > 256 {
			return fmt.Errorf("%s: nexthops[%d]: weight %d is outside 1-256", r.Dst, j, nh.Weight)
		}
	}
	return nil
}

func (r *Rule) validate() error {
	if r.Family != 4 && r.Family != 6 {
		return fmt.Errorf("pref %d: family must be 4 or 6, got %d", r.Priority, r.Family)
	}
	for _, p := range []struct {
		word string
		v    interface{ IsValid() bool }
		is4  bool
	}{{"from", r.Src, r.Src.Addr().Is4()}, {"to", r.Dst, r.Dst.Addr().Is4()}} {
		if p.v.IsValid() && p.is4 != (r.Family == 4) {
			return fmt.Errorf("pref %d: %s prefix is not IPv%d", r.Priority, p.word, r.Family)
		}
	}
	if r.Action == ActionLookup && r.Table == 0 && !r.L3MDev {
		return fmt.Errorf("pref %d: lookup without a table", r.Priority)
	}
	if r.Action == 0 {
		return fmt.Errorf("pref %d: action is missing", r.Priority)
	}
	for _, p := range []*PortRange{r.SPort, r.DPort} {
		if p != nil && p.Start > p.End {
			return fmt.Errorf("pref %d: port range %d-%d is reversed", r.Priority, p.Start, p.End)
		}
	}
	if r.UID != nil && r.UID.Start > r.UID.End {
		return fmt.Errorf("pref %d: uid range %d-%d is reversed", r.Priority, r.UID.Start, r.UID.End)
	}
	return nil
}
