package vpntest

import (
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/tunroute/tunroute/internal/lab"
	"github.com/tunroute/tunroute/internal/testns"
)

func TestMain(m *testing.M) {
	os.Exit(testns.Main{Name: "vpntest", Sweep: sweepStale, After: func() { printLeakTable(os.Stdout) }}.Run(m))
}

// needs skips the test unless it runs as root with the programs given.
func needs(t *testing.T, progs ...string) { testns.Need(t, progs...) }

// nsPrefix starts every namespace name of these tests; TUNROUTE_TEST_NS
// changes it (short letters and digits), so that several people testing
// on one machine never touch each other's labs.
var nsPrefix = func() string {
	if p := os.Getenv("TUNROUTE_TEST_NS"); regexp.MustCompile(`^[a-z][a-z-]{0,7}$`).MatchString(p) {
		return p
	}
	return "tr-vt"
}()

// labPrefix is the namespace prefix of one test's lab.
func labPrefix(kind string) string { return fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), kind) }

var staleNS = regexp.MustCompile(`^` + regexp.QuoteMeta(nsPrefix) + `(\d+)-([a-z0-9]+)-(client|isp|vpnserver|inet)$`)

// sweepStale removes what an earlier run of these tests left behind when
// it was killed before its cleanup (a timeout panic runs no cleanup): the
// labs of test processes that no longer exist. Their daemons died with
// them (Pdeathsig), but a hook they were running may still hold the
// namespace; such processes are killed by pid.
func sweepStale() {
	for _, name := range testns.Stale(testns.Dir, staleNS) {
		m := staleNS.FindStringSubmatch(name)
		testns.KillIn(name)
		l := &lab.Lab{Prefix: fmt.Sprintf("%s%s-%s-", nsPrefix, m[1], m[2])}
		if err := l.Destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "vpntest: removing the stale lab %s: %v\n", l.Prefix, err)
		} else {
			fmt.Fprintf(os.Stderr, "vpntest: removed the stale lab %s (its test process %s is gone)\n", l.Prefix, m[1])
		}
	}
}
