// Package poll lets a test wait for a condition that becomes true in its
// own time (a message arrives, a port opens, a log line is written) instead
// of sleeping for a fixed time: a fixed sleep is either too short on a busy
// machine, and the test flakes, or too long everywhere, and the suite
// crawls. It is for tests only and imports none of the bridge's packages.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 10 * time.Millisecond

// Until checks cond every Interval until it holds or timeout passes, and
// reports whether it held. For a test that adds its own context to the
// failure; most call For.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Interval)
	}
	return true
}

// For fails the test unless cond holds within timeout; what names the
// condition in the failure.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
