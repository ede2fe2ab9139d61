package config

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestPlainPrefix4AgreesWithParsePrefix: whatever the fast path of a
// route list's lines accepts, ParsePrefix accepts as the same prefix;
// edge cases and random mutations of valid lines.
func TestPlainPrefix4AgreesWithParsePrefix(t *testing.T) {
	lines := []string{"10.0.0.0/8", "10.0.0.1", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.0/24", "1.2.3.4/24",
		"01.2.3.0/24", "1.2.3.0/024", "1.2.3.0/33", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.4/", "1.2.3.4/3x",
		"1..2.3", "1.2.3.4 ", "1.2.3.0/24/1", "0.0.0.0", "00.0.0.0", "1.2.3.4/0", "::1", "1000.1.1.1", "9.9.9.9/32"}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "0123456789./ x:"
	for range 20000 {
		b := []byte(strconv.Itoa(r.IntN(300)) + "." + strconv.Itoa(r.IntN(300)) + "." + strconv.Itoa(r.IntN(256)) + "." +
			strconv.Itoa(r.IntN(256)) + "/" + strconv.Itoa(r.IntN(40)))
		for range r.IntN(3) {
			b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
		}
		lines = append(lines, string(b), strconv.Itoa(r.IntN(256))+"."+strconv.Itoa(r.IntN(256))+".0.0/16")
	}
	fast := 0
	for _, l := range lines {
		p, ok := plainPrefix4([]byte(l))
		if !ok {
			continue
		}
		fast++
		want, err := ParsePrefix(l)
		if err != nil || want != p {
			t.Errorf("%q: fast path %v, ParsePrefix %v, %v", l, p, want, err)
		}
	}
	if fast < 20000 {
		t.Errorf("the fast path took only %d of %d lines", fast, len(lines))
	}
}
