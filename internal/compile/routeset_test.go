package compile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
)

func TestRouteLists(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	write("a.txt", "# office\n10.99.0.0/16\n10.98.0.0/16 # lab\n\n2001:db8:99::/48\n")
	write("dup.txt", "10.99.0.0/16\n10.99.0.0/16\n")
	compileFile := func(yaml string) (*Result, error) {
		p := filepath.Join(dir, "c.yaml")
		os.WriteFile(p, []byte(yaml), 0o644)
		cfg, err := config.Load(p, config.Options{TableNames: map[string]uint32{"main": 254}})
		if err != nil {
			return nil, err
		}
		return Compile(cfg, labClient(), nil)
	}
	res, err := compileFile("identities: [{name: v, device: wg0, gateway: none}]\nroutes:\n  - {to_file: a.txt, via: v}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.State.RouteSets) != 2 || len(res.State.RouteSets[0].Dsts) != 2 || len(res.State.RouteSets[1].Dsts) != 1 {
		t.Fatalf("sets: %+v", res.State.RouteSets)
	}
	if s := res.State.RouteSets[0].Summary(); s != "2 routes like 10.99.0.0/16 dev wg0 table main scope link src 10.30.0.2" {
		t.Errorf("summary: %s", s)
	}
	for yaml, want := range map[string]string{
		"identities: [{name: v, device: wg0, gateway: none}]\nroutes:\n  - {to_file: dup.txt, via: v}\n":                                        "10.99.0.0/16 in table main is listed twice (also by routes[0].to_file)",
		"identities: [{name: v, device: wg0, gateway: none}]\nroutes:\n  - {to: 10.99.0.0/16, type: blackhole}\n  - {to_file: a.txt, via: v}\n": "route 10.99.0.0/16 in table main is also made by the list of routes[1].to_file",
		"identities: [{name: v, device: wg0, gateway: none}]\nroutes:\n  - {to_file: a.txt, via: v}\n  - {to: 10.98.0.0/16, type: blackhole}\n": "route 10.98.0.0/16 in table main is also made by the list of routes[0].to_file",
		"routes:\n  - {to_file: missing.txt, type: blackhole}\n":                                                                                "cannot read the route list",
	} {
		if _, err := compileFile(yaml); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s\ngot %v\nwant %s", yaml, err, want)
		}
	}
}
