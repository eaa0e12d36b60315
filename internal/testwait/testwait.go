// Package testwait is the one way Skiff's tests wait for something to happen: poll a
// condition until it holds or a deadline passes, then fail naming what was awaited. Tests
// wait on conditions with deadlines, never sleep and hope.
package testwait

import (
	"testing"
	"time"
)

// maxInterval bounds the pause between two polls: short enough that a test goes on soon
// after its condition holds, long enough not to spin on a loaded machine.
const maxInterval = 20 * time.Millisecond

// For polls cond until it returns true, failing tb (Fatalf) with what if it has not within
// d. Polls start 1ms apart and back off to 20ms.
func For(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	interval := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
			return
		}
		time.Sleep(interval)
		interval = min(2*interval, maxInterval)
	}
}
