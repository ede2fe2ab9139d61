package fib

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/testns"
)

type regression struct {
	name    string
	setup   []string
	queries []string
	kernel  []string
}

func readRegressions(t testing.TB) ([]regression, []string) {
	data, err := os.ReadFile("testdata/regressions.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var out []regression
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "case: "):
			out = append(out, regression{name: l[6:]})
		case strings.HasPrefix(l, "setup: "):
			out[len(out)-1].setup = append(out[len(out)-1].setup, l[7:])
		case strings.HasPrefix(l, "query: "):
			out[len(out)-1].queries = append(out[len(out)-1].queries, l[7:])
		case strings.HasPrefix(l, "kernel: "):
			out[len(out)-1].kernel = append(out[len(out)-1].kernel, l[8:])
		}
	}
	return out, lines
}

// answerMatches compares a recorded `ip -j -d route get` answer with r.
func answerMatches(kern string, r *Result) string {
	if msg, ok := strings.CutPrefix(kern, "error: "); ok {
		want := strings.TrimPrefix(msg, "RTNETLINK answers: ")
		want = strings.TrimSuffix(strings.TrimPrefix(want, "Error: "), ".")
		if r.Error != want {
			return fmt.Sprintf("error %q, want %q", r.Error, want)
		}
		return ""
	}
	var km, fm map[string]any
	if err := json.Unmarshal([]byte(kern), &km); err != nil {
		return err.Error()
	}
	if err := json.Unmarshal(r.AppendAnswerJSON(nil), &fm); err != nil {
		return err.Error()
	}
	delete(fm, "uncertain")
	if !reflect.DeepEqual(km, fm) {
		return fmt.Sprintf("got  %s\nwant %s", r.AppendAnswerJSON(nil), kern)
	}
	return ""
}

func TestRegressions(t *testing.T) {
	regs, _ := readRegressions(t)
	for _, rg := range regs {
		t.Run(rg.name, func(t *testing.T) {
			k := newKState(t)
			for _, c := range rg.setup {
				switch {
				case strings.HasPrefix(c, "sysctl "):
					kv := strings.SplitN(c[7:], "=", 2)
					k.sysctl(kv[0], kv[1])
				case c == "unmerge":
					k.ip("rule add pref 1 lookup 1")
					k.ip("rule del pref 1")
				default:
					k.ip(c)
				}
			}
			f, err := New(k.state())
			if err != nil {
				t.Fatal(err)
			}
			for i, q := range rg.queries {
				pq, err := ParseQuery(strings.Fields(q))
				if err != nil {
					t.Fatal(err)
				}
				r := f.Lookup(pq)
				if why := answerMatches(rg.kernel[i], &r); why != "" {
					t.Errorf("ip route get %s:\n%s\n%s", q, why, r.Text())
				}
			}
		})
	}
}

// TestRegressionsKernel re-checks the recorded answers against the
// running kernel (root; throw-away namespaces tr-fx-r-<pid>).
// TUNROUTE_RECORD=1 rewrites testdata/regressions.txt with them.
func TestRegressionsKernel(t *testing.T) {
	testns.Need(t, "ip")
	regs, lines := readRegressions(t)
	ns := fmt.Sprintf("tr-fx-r-%d", os.Getpid())
	defer exec.Command("ip", "netns", "del", ns).Run()
	var answers []string
	for _, rg := range regs {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		run := func(args ...string) {
			if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: ip %s: %v: %s", rg.name, strings.Join(args, " "), err, out)
			}
		}
		run("link", "set", "lo", "up")
		_ = exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0").Run()
		for _, c := range rg.setup {
			switch {
			case strings.HasPrefix(c, "sysctl "):
				if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", c[7:]).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v: %s", c, err, out)
				}
			case c == "unmerge":
				run("rule", "add", "pref", "1", "lookup", "1")
				run("rule", "del", "pref", "1")
			default:
				run(strings.Fields(c)...)
			}
		}
		for i, q := range rg.queries {
			cmd := exec.Command("ip", append([]string{"-n", ns, "-j", "-d", "route", "get"}, strings.Fields(q)...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			got := ""
			if err := cmd.Run(); err != nil {
				got = "error: " + strings.TrimSpace(stderr.String())
			} else {
				got = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(stdout.String()), "["), "]")
			}
			answers = append(answers, got)
			if os.Getenv("TUNROUTE_RECORD") == "" && got != rg.kernel[i] {
				t.Errorf("%s: ip route get %s:\n kernel:   %s\n recorded: %s", rg.name, q, got, rg.kernel[i])
			}
		}
	}
	if os.Getenv("TUNROUTE_RECORD") != "" {
		j := 0
		for i, l := range lines {
			if strings.HasPrefix(l, "kernel: ") {
				lines[i] = "kernel: " + answers[j]
				j++
			}
		}
		if err := os.WriteFile("testdata/regressions.txt", []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Found by the differential test (seed 900359): forwarding over a
// multipath route whose hash key is unknown, where the source check fails
// on one path (the path leaves through the input device, so the full
// reverse lookup runs and finds a multicast route) and passes on the
// others: only the passing paths are possible, and the answer says so.
func TestMultipathInputValidation(t *testing.T) {
	k := newKState(t)
	for _, c := range []string{
		"link add v1 type veth peer name v1p", "link add v2 type veth peer name v2p",
		"link set v1 up", "link set v1p up", "link set v2p up",
		"addr add 10.1.0.2/24 dev v1p", "addr add 10.1.1.1/24 dev v1", "addr add 10.2.0.2/24 dev v2p",
		"route append 10.4.186.0/23 nexthop via 10.1.1.4 nexthop via 10.2.0.254 nexthop via 10.2.0.4",
		"route add multicast 0.0.0.0/0 dev v1p src 10.1.0.2",
	} {
		k.ip(c)
	}
	k.sysctl("net.ipv4.conf.v1.forwarding", "1")
	f, err := New(k.state())
	if err != nil {
		t.Fatal(err)
	}
	q, _ := ParseQuery(strings.Fields("10.4.186.99 from 10.2.3.119 iif v1 ipproto udp sport 941 dport 1238"))
	r := f.Lookup(q)
	if r.Error != "" || r.Dev != "v2p" {
		t.Fatalf("got %s", r.JSON())
	}
	if len(r.Possible) != 2 || r.Possible[0].Dev != "v2p" || r.Possible[1].Dev != "v2p" {
		t.Errorf("possible paths: %+v", r.Possible)
	}
	found := false
	for _, u := range r.Uncertain {
		found = found || u == UncertainMultipathValidation
	}
	if !found {
		t.Errorf("no validation note: %q", r.Uncertain)
	}
}
