package autoscaler

import (
	"math"
	"testing"
	"time"
)

// t0 is a base time a little past a second, so that truncation to buckets is exercised.
var t0 = time.Unix(1_700_000_000, 300*int64(time.Millisecond))

func sec(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

// From knative/serving pkg/autoscaler/aggregation/bucketing_test.go TestTimedFloat64BucketsSimple
// ("granularity = 1s"): values in the same second add up, as the collector sums its sources.
func TestBucketsSameSecondAdds(t *testing.T) {
	b := newBuckets(2 * time.Minute)
	if !b.empty(t0) {
		t.Fatal("new buckets are not empty")
	}
	base := t0.Truncate(time.Second)
	b.record(base, 1)                            // the activator's first-request stat
	b.record(base.Add(100*time.Millisecond), 10) // a scrape in the same second
	b.record(base.Add(time.Second), 1)
	b.record(base.Add(3*time.Second), 1)
	if got := b.average(base.Add(3 * time.Second)); got != (11.+1+0+1)/4 {
		t.Fatalf("average = %g, want (11+1+0+1)/4", got)
	}
	if b.empty(base.Add(3 * time.Second)) {
		t.Fatal("empty with data")
	}
}

// From bucketing_test.go TestTimedFloat64BucketsWindowAverage, step by step.
func TestBucketsWindowAverage(t *testing.T) {
	now := t0
	b := newBuckets(5 * time.Second)
	b.record(now, 1)
	check := func(at time.Time, want float64) {
		t.Helper()
		if got := b.average(at); got != want {
			t.Fatalf("average at +%v = %v, want %v", at.Sub(t0), got, want)
		}
	}
	// Only the seconds since the first write count: 1, not 0.2.
	check(now, 1)
	for i := 1; i < 5; i++ {
		b.record(now.Add(sec(float64(i))), float64(i+1))
	}
	check(now.Add(sec(4)), 15./5)
	check(now.Add(3600*time.Millisecond), 15./5) // now lags behind the last write
	check(now.Add(sec(6)), (15.-1-2)/(5-2))      // a short hole: stale seconds left out
	check(now.Add(sec(10)), 0)                   // a hole of a whole window
	b.record(now.Add(sec(6)), 91)                // a write after a hole zeroes the gap
	check(now.Add(sec(6)), (15.-1-2+91)/5)

	now = now.Add(time.Minute)
	b.record(now, 1984)
	check(now, 1984)
	b.record(now.Add(sec(-3)), 4) // an earlier second within the window
	check(now, (4.+1984)/4)
	now = now.Add(time.Second)
	b.record(now, 5)
	check(now, (4.+1984+5)/5)
	b.record(now.Add(sec(-3)), 10)
	check(now, (4.+10+1984+5)/5)
	b.record(now.Add(sec(-6)), 10) // too old: ignored
	check(now, (4.+10+1984+5)/5)
	b.record(now.Add(sec(-5)), 10) // exactly a window old: ignored
	check(now, (4.+10+1984+5)/5)
	b.record(now.Add(sec(5)), 10) // nothing for exactly a window: start over
	check(now.Add(sec(5)), 10)
}

// From bucketing_test.go TestDescendingRecord.
func TestBucketsDescendingRecord(t *testing.T) {
	b := newBuckets(5 * time.Second)
	for i := 8; i >= 0; i-- {
		b.record(t0.Add(sec(float64(i))), 5)
	}
	if got := b.average(t0.Add(sec(5))); got != 5 {
		t.Fatalf("average = %g, want 5", got)
	}
}

// From bucketing_test.go TestTimedFloat64BucketsHoles: a write after a gap zeroes the
// buckets in between.
func TestBucketsHoles(t *testing.T) {
	b := newBuckets(5 * time.Second)
	for i := range 5 {
		b.record(t0.Add(sec(float64(i))), float64(i+1))
	}
	if got := b.average(t0.Add(sec(4))); got != 3 {
		t.Fatalf("average = %g, want 3", got)
	}
	b.record(t0.Add(sec(8)), 2)
	// Seconds 4 (5) and 8 (2) remain, 5-7 are zero: (5+0+0+0+2)/5.
	if got := b.average(t0.Add(sec(8))); got != 7./5 {
		t.Fatalf("average = %g, want 7/5", got)
	}
}

// From bucketing_test.go TestTimedFloat64BucketsResizeWindow.
func TestBucketsResize(t *testing.T) {
	b := newBuckets(5 * time.Second)
	for i := range 6 {
		b.record(t0.Add(sec(float64(i))), float64(i+1))
	}
	now := t0.Add(sec(5))
	const initial = 2. + 3 + 4 + 5 + 6
	if got := b.average(now); got != initial/5 {
		t.Fatalf("average = %g, want %g", got, initial/5)
	}
	b.resize(now, 10*time.Second)
	if len(b.vals) != 10 || b.window != 10*time.Second {
		t.Fatalf("resized to %d buckets, %v", len(b.vals), b.window)
	}
	if got := b.average(now); got != initial/5 {
		t.Fatalf("average after growing = %g, want %g (at most 5 seconds were recorded)", got, initial/5)
	}
	now = now.Add(time.Second)
	b.record(now, 7)
	if got := b.average(now); got != round6((initial+7)/6) {
		t.Fatalf("average = %g, want %g", got, (initial+7)/6)
	}
	b.resize(now, 4*time.Second)
	const shrunk = initial + 7 - 2 - 3
	if got := b.average(now); got != shrunk/4 {
		t.Fatalf("average after shrinking = %g, want %g", got, shrunk/4)
	}
}

// From bucketing_test.go TestComputeDecayMultiplier and TestTimedFloat64BucketsWeightedAverage.
func TestWeightedBuckets(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want float64
	}{{100, minSmoothing}, {60, minSmoothing}, {40, 0.20567}, {6, 0.78456}} {
		if got := smoothingFor(tc.n); math.Abs(got-tc.want) > 1e-4 {
			t.Errorf("smoothingFor(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}

	b := newWeightedBuckets(5 * time.Second)
	m := b.smoothing
	b.record(t0, 2)
	want := 2 * m
	if got := b.average(t0); got != want {
		t.Fatalf("average = %v, want %v", got, want)
	}
	want *= 1 - m // a second later, no write
	if got := b.average(t0.Add(sec(1))); got != want {
		t.Fatalf("average = %v, want %v", got, want)
	}
	b.record(t0.Add(sec(1)), 2)
	want += 2 * m
	if got := b.average(t0.Add(sec(1))); got != want {
		t.Fatalf("average = %v, want %v", got, want)
	}
	for i := range 5 {
		b.record(t0.Add(sec(float64(2+i))), float64(i+2))
	}
	want = 6*m + 5*m*(1-m) + 4*m*(1-m)*(1-m) + 3*m*(1-m)*(1-m)*(1-m) + 2*m*(1-m)*(1-m)*(1-m)*(1-m)
	if got := b.average(t0.Add(sec(6))); got != want {
		t.Fatalf("average = %v, want %v", got, want)
	}
	if got := b.average(t0.Add(sec(16))); got != 0 {
		t.Fatalf("average of an empty window = %v, want 0", got)
	}
	b.resize(t0.Add(sec(16)), 10*time.Second)
	if b.smoothing != smoothingFor(10) {
		t.Fatalf("smoothing after resize = %v, want %v", b.smoothing, smoothingFor(10))
	}
}

// From knative/serving pkg/autoscaler/aggregation/max/timewindow_test.go TestTimedWindowMax,
// and the autoscaler's use of it with a 2s tick as granularity.
func TestMaxWindow(t *testing.T) {
	type entry struct {
		at time.Duration
		v  int
	}
	for _, tc := range []struct {
		name   string
		period time.Duration
		gran   time.Duration
		values []entry
		want   int
	}{
		{"single value", 5 * time.Second, time.Second, []entry{{0, 5}}, 5},
		{"two values in same second", 5 * time.Second, time.Second, []entry{{0, 6}, {500 * time.Millisecond, 5}}, 6},
		{"two values", 5 * time.Second, time.Second, []entry{{0, 5}, {time.Second, 8}}, 8},
		{"time gap", 5 * time.Second, time.Second, []entry{{0, 5}, {6 * time.Second, 4}}, 4},
		{"still within the period", 10 * time.Second, 2 * time.Second, []entry{{0, 7}, {8 * time.Second, 1}}, 7},
		{"period passed", 10 * time.Second, 2 * time.Second, []entry{{0, 7}, {10 * time.Second, 1}}, 1},
		{"descending values expire one by one", 10 * time.Second, 2 * time.Second,
			[]entry{{0, 9}, {2 * time.Second, 5}, {4 * time.Second, 3}, {12 * time.Second, 1}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newMaxWindow(tc.period, tc.gran)
			got := 0
			for _, e := range tc.values {
				got = w.record(t0.Truncate(2*time.Second).Add(e.at), e.v)
			}
			if got != tc.want {
				t.Fatalf("max = %d, want %d", got, tc.want)
			}
		})
	}
}
