package testns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The independent oracles: the tests read and change namespaces with
// iproute2 and nft, not with tunroute's own kernel code.

// IP runs ip(8) with args, in the named namespace if ns is not "" (-n);
// an error fails the test. It returns the output.
func IP(tb testing.TB, ns string, args ...string) string {
	tb.Helper()
	out, err := IPErr(ns, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// IPErr is IP that returns the error (with the output) instead.
func IPErr(ns string, args ...string) (string, error) {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Cmd runs argv (a program and its arguments) and returns its output; a
// failure fails the test, with the command line and the output.
func Cmd(tb testing.TB, argv ...string) string {
	tb.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// Nft runs nft(8) with args inside the named namespace, with stdin as
// its input if not "".
func Nft(ns, stdin string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	return string(out), nil
}

// NftCounters reads `nft -j list ...` output: the packets counted by
// each rule, added up by rule comment.
func NftCounters(js []byte) (map[string]uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Comment string           `json:"comment"`
				Expr    []map[string]any `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, err
	}
	n := map[string]uint64{}
	for _, x := range doc.Nftables {
		if x.Rule == nil {
			continue
		}
		for _, ex := range x.Rule.Expr {
			if c, ok := ex["counter"].(map[string]any); ok {
				if p, ok := c["packets"].(float64); ok {
					n[x.Rule.Comment] += uint64(p)
				}
			}
		}
	}
	return n, nil
}

// ForeignNftables is another tool's nftables table, for the tests that
// check tunroute leaves what is not its own alone. Its counter counts
// nothing (no test sends to 10.255.0.1), so its dump stays the same.
const ForeignNftables = `table inet foreign {
	set blocked {
		type ipv4_addr
		elements = { 10.255.0.1 }
	}
	chain out {
		type filter hook output priority 10; policy accept;
		ip daddr @blocked counter drop comment "another tool's rule"
	}
}
`

// Run runs argv with the environment environ (nil: the test's own) for
// at most 30 seconds and returns its output and exit status; err is
// set only when it could not run or did not exit by itself.
func Run(argv, environ []string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.Exited() {
			return out.String(), ee.ExitCode(), nil
		}
		return out.String(), -1, fmt.Errorf("%v (%s)", err, out.String())
	}
	return out.String(), 0, err
}
