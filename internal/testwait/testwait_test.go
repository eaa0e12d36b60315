package testwait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records instead of stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	r := &recorder{TB: t}
	For(r, 5*time.Second, "three polls", func() bool { return n.Add(1) >= 3 })
	if r.failed != "" || n.Load() != 3 {
		t.Fatalf("failed %q after %d polls, want success on the third", r.failed, n.Load())
	}
}

func TestForFailsNamingWhatItAwaited(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	For(r, 30*time.Millisecond, "the impossible", func() bool { return false })
	if !strings.Contains(r.failed, "timed out after 30ms waiting for the impossible") {
		t.Fatalf("failure %q, want one naming the wait", r.failed)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("gave up before the deadline")
	}
}
