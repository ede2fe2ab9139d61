package compile

import (
	"path/filepath"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
)

// TestExamples compiles every shipped example against the lab client's
// state: each must be valid and produce objects. The lab tests apply
// them for real.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		cfg, err := config.Load(f, config.Options{TableNames: map[string]uint32{"main": 254, "local": 255, "default": 253}})
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		res, err := Compile(cfg, labClient(), nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(res.State.Routes) == 0 || len(res.State.Rules) == 0 {
			t.Errorf("%s: compiled to nothing", f)
		}
	}
}
