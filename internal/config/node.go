package config

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Pos is where a value stands in the config file, with its field path.
type Pos struct {
	File  string
	Line  int
	Col   int
	Field string // e.g. "identities[1].gateway"
}

// positions finds where the fields of one config entry stand in the file
// (the entry's mapping's at); embedded in each entry type, it gives the
// entry its At.
type positions func(field string) Pos

// At returns the position of a field of the entry.
func (p positions) At(field string) Pos { return p(field) }

// Error is a config error that names the file, line, column and field.
type Error struct {
	Pos
	Msg string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Field, e.Msg)
}

// Errorf returns an *Error at p.
func (p Pos) Errorf(format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// node is a YAML node with the path that leads to it.
type node struct {
	n    ast.Node
	pos  Pos
	file string
}

func newNode(n ast.Node, file, field string) node {
	p := Pos{File: file, Field: field}
	// A mapping stands where its first key stands.
	at := n
	switch m := n.(type) {
	case *ast.MappingNode:
		if len(m.Values) > 0 {
			at = m.Values[0].Key
		}
	case *ast.MappingValueNode:
		at = m.Key
	}
	if at != nil && at.GetToken() != nil {
		p.Line = at.GetToken().Position.Line
		p.Col = at.GetToken().Position.Column
	}
	return node{n: n, pos: p, file: file}
}

func (nd node) isNull() bool {
	if nd.n == nil {
		return true
	}
	_, ok := nd.n.(*ast.NullNode)
	return ok
}

func kindName(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.NullNode:
		return "nothing"
	}
	return "a value"
}

// scalar returns the text of a scalar node.
func (nd node) scalar() (string, error) {
	switch v := nd.n.(type) {
	case *ast.StringNode:
		return v.Value, nil
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, nil
	case *ast.LiteralNode:
		return strings.TrimSpace(v.Value.Value), nil
	}
	return "", nd.pos.Errorf("expected a single value, found %s", kindName(nd.n))
}

// list returns the elements of a sequence; a scalar counts as a list of
// one, so `to: 10.0.0.0/8` and `to: [10.0.0.0/8]` mean the same.
func (nd node) list() ([]node, error) {
	switch v := nd.n.(type) {
	case *ast.SequenceNode:
		out := make([]node, len(v.Values))
		for i, e := range v.Values {
			out[i] = newNode(e, nd.file, fmt.Sprintf("%s[%d]", nd.pos.Field, i))
		}
		return out, nil
	case *ast.NullNode:
		return nil, nil
	case *ast.MappingNode, *ast.MappingValueNode:
		return nil, nd.pos.Errorf("expected a list, found a mapping")
	}
	return []node{nd}, nil
}

// seqOnly is list() without the scalar convenience.
func (nd node) seqOnly() ([]node, error) {
	if _, ok := nd.n.(*ast.SequenceNode); !ok && !nd.isNull() {
		return nil, nd.pos.Errorf("expected a list, found %s", kindName(nd.n))
	}
	return nd.list()
}

// mapping is a YAML mapping whose keys are checked against a known set.
type mapping struct {
	pos    Pos
	keys   []string
	values map[string]node
}

func (nd node) mapping(allowed ...string) (*mapping, error) {
	var pairs []*ast.MappingValueNode
	if nd.isNull() {
		return &mapping{pos: nd.pos, values: map[string]node{}}, nil
	}
	switch v := nd.n.(type) {
	case *ast.MappingNode:
		pairs = v.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{v}
	default:
		return nil, nd.pos.Errorf("expected a mapping, found %s", kindName(nd.n))
	}
	m := &mapping{pos: nd.pos, values: map[string]node{}}
	for _, p := range pairs {
		key := p.Key.GetToken().Value
		field := key
		if nd.pos.Field != "" {
			field = nd.pos.Field + "." + key
		}
		kn := newNode(p.Key, nd.file, field)
		if !contains(allowed, key) {
			return nil, kn.pos.Errorf("unknown field; expected one of: %s", strings.Join(allowed, ", "))
		}
		if _, dup := m.values[key]; dup {
			return nil, kn.pos.Errorf("given twice")
		}
		vn := newNode(p.Value, nd.file, field)
		if vn.pos.Line == 0 {
			vn.pos.Line, vn.pos.Col = kn.pos.Line, kn.pos.Col
		}
		m.keys = append(m.keys, key)
		m.values[key] = vn
	}
	return m, nil
}

func (m *mapping) get(key string) (node, bool) {
	v, ok := m.values[key]
	if ok && v.isNull() {
		return v, false
	}
	return v, ok
}

// at returns the position of key's value, or of the mapping if absent.
func (m *mapping) at(key string) Pos {
	if v, ok := m.values[key]; ok {
		return v.pos
	}
	p := m.pos
	if p.Field != "" {
		p.Field += "."
	}
	p.Field += key
	return p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
