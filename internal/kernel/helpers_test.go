package kernel

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// needRoot skips tests that change network namespaces when not root.
func needRoot(t testing.TB) {
	t.Helper()
	testns.Need(t, "ip")
}

// newNS creates the namespace tr-k-<short>-<pid> with lo up and deletes it
// when the test ends, whatever the outcome.
func newNS(t testing.TB, short string) string {
	t.Helper()
	prefix := "tr-k"
	if p := os.Getenv("TUNROUTE_TEST_NS_PREFIX"); p != "" {
		prefix = p // engineers sharing a machine keep to their own names
	}
	return testns.NewNS(t, fmt.Sprintf("%s-%s-%d", prefix, short, os.Getpid()))
}

// ipn runs `ip -n ns ARGS...` and fails the test if it fails.
func ipn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return testns.IP(t, ns, args...)
}

// ipScript runs one `ip -n ns` command per line of script.
func ipScript(t testing.TB, ns, script string) {
	t.Helper()
	for _, line := range strings.Split(script, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ipn(t, ns, strings.Fields(line)...)
		}
	}
}

// vethVA is the network most tests route out of: the veth va, up with
// 10.1.0.1/24 (gateways 10.1.0.x are reachable through it), and its peer vb.
const vethVA = `
link add va type veth peer name vb
link set va up
link set vb up
addr add 10.1.0.1/24 dev va
`

// ipJSON runs `ip -n ns -j ARGS...` and decodes its output into v.
func ipJSON(t testing.TB, ns string, v any, args ...string) {
	t.Helper()
	out := ipn(t, ns, append([]string{"-j"}, args...)...)
	if strings.TrimSpace(out) == "" {
		out = "[]"
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("ip -n %s -j %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
}

// sysctlIn sets a sysctl inside ns.
func sysctlIn(t testing.TB, ns, name, value string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", name+"="+value).CombinedOutput()
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v: %s", name, value, ns, err, out)
	}
}

func openT(t testing.TB, ns string) *Handle {
	t.Helper()
	h, err := Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// observeT reads the namespace through h with the options o, failing the
// test on an error.
func observeT(t testing.TB, h *Handle, o ObserveOptions) *state.State {
	t.Helper()
	s, err := h.ObserveWith(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
