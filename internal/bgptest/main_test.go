package bgptest

import (
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/tunroute/tunroute/internal/testns"
)

func TestMain(m *testing.M) {
	os.Exit(testns.Main{Name: "bgptest", Links: []string{"tr-bgp"},
		Namespaces: fmt.Sprintf("tr-bgp%d-", os.Getpid()), Sweep: sweepStale}.Run(m))
}

// needRoot skips the test unless it runs as root with ip, BIRD (the
// attacker and the default engine) and the engine under test.
func needRoot(t *testing.T, engine string) {
	t.Helper()
	progs := []string{"ip", "bird", "birdc"}
	if engine == "frr" {
		progs = append(progs, "vtysh", "/usr/lib/frr/bgpd")
	}
	testns.Need(t, progs...)
}

var staleNS = regexp.MustCompile(`^tr-bgp(\d+)-`)

func sweepStale() { testns.SweepStale(staleNS) }
