package testns

import (
	"testing"
	"time"
)

// Await receives from ch until match accepts a value and returns it; the
// test fails if none comes within d. match may fail the test itself on a
// value that should never arrive.
func Await[T any](tb testing.TB, ch <-chan T, d time.Duration, what string, match func(T) bool) T {
	tb.Helper()
	deadline := time.After(d)
	for {
		select {
		case v := <-ch:
			if match(v) {
				return v
			}
		case <-deadline:
			tb.Fatalf("no %s within %v", what, d)
		}
	}
}
