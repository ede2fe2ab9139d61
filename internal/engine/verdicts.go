package engine

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/plan"
)

// RecordVerdicts makes v the health checks' verdict, with since when and
// why: the plan compiles with it and the apply records it, so later
// plans keep it, and status and explain can say why a group moved.
func (f *Facts) RecordVerdicts(e *Engine, v map[string]compile.Verdict) error {
	f.Verdicts = v
	f.Health = make(map[string]bool, len(v))
	for id, vd := range v {
		f.Health[id] = vd.Up
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	p := f.healthPath()
	have, err := e.Host.ReadFile(p)
	if err != nil {
		return err
	}
	var words []string
	for _, id := range slices.Sorted(maps.Keys(v)) {
		w := " up"
		if !v[id].Up {
			w = " down"
		}
		words = append(words, id+w)
	}
	f.Files = append(f.Files, plan.File{Path: p, Want: append(data, '\n'), Have: have, About: "health: " + strings.Join(words, ", ")})
	return nil
}

// readVerdicts reads the health record: by identity, a verdict object
// ({"up": false, "since": ..., "why": ...}) or, as older versions wrote
// it, a bare true/false.
func (f *Facts) readVerdicts(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	f.Health = make(map[string]bool, len(raw))
	f.Verdicts = make(map[string]compile.Verdict, len(raw))
	for id, r := range raw {
		var v compile.Verdict
		if err := json.Unmarshal(r, &v.Up); err != nil {
			if err := json.Unmarshal(r, &v); err != nil {
				return fmt.Errorf("identity %s: %w", id, err)
			}
		}
		f.Health[id], f.Verdicts[id] = v.Up, v
	}
	return nil
}
