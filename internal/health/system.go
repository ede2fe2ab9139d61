package health

import "github.com/tunroute/tunroute/internal/compile"

// SystemProbes are the probes of every namespace of a compiled system:
// the top namespace's identities by name, a routing domain's as
// "DOMAIN/IDENTITY" (the names compile.CompileSystemHealth reads the
// verdicts by), each run in its own namespace (Probe.Netns). What the
// prober must run after each compile: Update(SystemProbes(c.System)).
func SystemProbes(sys *compile.System) []compile.Probe {
	if sys == nil {
		return nil
	}
	var out []compile.Probe
	for i, d := range sys.Domains {
		if d.Result == nil {
			continue
		}
		for _, p := range d.Result.Probes {
			if i > 0 {
				p.Identity = d.Name + "/" + p.Identity
				p.Netns = d.Netns
			}
			out = append(out, p)
		}
	}
	return out
}
