package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/fib"
)

// flowGroups says, for explain, which failover or balance group a flow
// goes through and which member carries it, and why: the compiled
// group (as status shows it) with its members' recorded health.
type flowGroups struct {
	cfg      *config.Config
	uses     []compile.GroupUse
	verdicts map[string]compile.Verdict
	// compiled returns the groups as the config compiles now; it is
	// called only when a flow goes through one (a live explain then reads
	// what a plan reads).
	compiled func() ([]compile.GroupState, error)
}

// newFlowGroups returns nil when cfg has no group a route, the redirect
// or a selector uses.
func newFlowGroups(cfg *config.Config, f *engine.Facts, compiled func() ([]compile.GroupState, error)) *flowGroups {
	if cfg == nil {
		return nil
	}
	uses := compile.GroupUses(cfg)
	if len(uses) == 0 {
		return nil
	}
	fg := &flowGroups{cfg: cfg, uses: uses, compiled: compiled}
	if f != nil {
		fg.verdicts = f.Verdicts
	}
	return fg
}

// of is the group the answer r went through, nil if none.
func (fg *flowGroups) of(r *fib.Result) (*compile.GroupView, error) {
	if fg == nil || !r.OK() {
		return nil, nil
	}
	dst, _ := r.Matched()
	use, ok := compile.UsedGroup(fg.uses, r.HasRule, r.RulePref, r.Table, dst)
	if !ok {
		return nil, nil
	}
	groups, err := fg.compiled()
	if err != nil {
		return nil, err
	}
	for _, v := range compile.DescribeGroups(fg.cfg, groups, fg.verdicts) {
		if v.Name == use.Group {
			v.Uses = use.What
			return &v, nil
		}
	}
	return nil, nil
}

// writeGroupText adds the group's line to explain's text.
func writeGroupText(out io.Writer, v *compile.GroupView) {
	fmt.Fprintf(out, "group: %s: %s\n", v.Uses, v.Text())
}

// appendGroupJSON adds "group" to the answer's JSON object.
func appendGroupJSON(obj []byte, v *compile.GroupView) []byte {
	data, err := json.Marshal(v)
	if err != nil || len(obj) < 2 || obj[len(obj)-1] != '}' {
		return obj
	}
	obj = obj[:len(obj)-1]
	if len(obj) > 1 {
		obj = append(obj, ',')
	}
	obj = append(obj, `"group":`...)
	obj = append(obj, data...)
	return append(obj, '}')
}
