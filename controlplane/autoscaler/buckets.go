package autoscaler

import (
	"math"
	"time"
)

// bucketSize is the width of one averaging bucket, Knative's config.BucketSize.
const bucketSize = time.Second

// averager is a windowed average over one-second buckets: Knative's TimedFloat64Buckets
// (linear) or WeightedFloat64Buckets (weighted-exponential), chosen by the
// metric-aggregation-algorithm annotation.
type averager interface {
	record(at time.Time, v float64)
	average(now time.Time) float64
	empty(now time.Time) bool
	resize(now time.Time, window time.Duration)
}

// buckets is a ring of one-second buckets covering a window, with Knative's
// TimedFloat64Buckets semantics (pkg/autoscaler/aggregation/bucketing.go):
//   - values recorded in the same second add up (the collector sums its sources: the proxy's
//     scrape and the activator's report land in the same bucket);
//   - a record after a gap zeroes the skipped buckets; after a whole window without records
//     the window starts over (firstWrite is reset), so the average is over the seconds since;
//   - the average is over the seconds from the first write (at most a window) up to the last
//     write; seconds after the last write (no record yet) do not count, and a whole window
//     without records averages to 0.
type buckets struct {
	vals       []float64
	total      float64 // sum of vals, including stale ones the average leaves out
	firstWrite time.Time
	lastWrite  time.Time
	window     time.Duration
}

// newBuckets returns buckets for a window (rounded up to whole seconds).
func newBuckets(window time.Duration) *buckets {
	return &buckets{vals: make([]float64, bucketCount(window)), window: window}
}

// bucketCount is the number of one-second buckets a window needs, rounded up, at least one.
func bucketCount(window time.Duration) int {
	return max(1, int(math.Ceil(float64(window)/float64(bucketSize))))
}

// slot is the absolute bucket number of a time; modulo the ring size it indexes vals.
func slot(t time.Time) int { return int(t.Unix()) }

func (b *buckets) at(i int) *float64 {
	n := len(b.vals)
	return &b.vals[((i%n)+n)%n]
}

func (b *buckets) empty(now time.Time) bool {
	return now.Truncate(bucketSize).Sub(b.lastWrite) > b.window
}

func (b *buckets) record(at time.Time, v float64) {
	sec := at.Truncate(bucketSize)
	if sec != b.lastWrite {
		if !sec.Add(b.window).After(b.lastWrite) {
			return // more than a window older than the newest record
		}
		if b.firstWrite.IsZero() || b.firstWrite.After(sec) {
			b.firstWrite = sec
		}
		if sec.After(b.lastWrite) {
			if sec.Sub(b.lastWrite) >= b.window {
				// Nothing recorded for a whole window: start over.
				b.firstWrite = sec
				clear(b.vals)
				b.total = 0
			} else {
				// Zero the buckets skipped since the last record, and this one.
				for i := slot(b.lastWrite) + 1; i <= slot(at); i++ {
					p := b.at(i)
					b.total -= *p
					*p = 0
				}
			}
			b.lastWrite = sec
		}
	}
	*b.at(slot(at)) += v
	b.total += v
}

// validSeconds is the number of seconds between the first and the last write, inclusive.
func (b *buckets) validSeconds() float64 {
	return float64(b.lastWrite.Sub(b.firstWrite)/bucketSize) + 1
}

func (b *buckets) average(now time.Time) float64 {
	now = now.Truncate(bucketSize)
	n := len(b.vals)
	d := now.Sub(b.lastWrite)
	switch {
	case d <= 0:
		return round6(b.total / math.Min(b.validSeconds(), float64(n)))
	case d < b.window:
		// The buckets after the last write hold data older than the window: leave them out.
		from, to := slot(b.lastWrite), slot(now)
		sum := b.total
		for i := from + 1; i <= to; i++ {
			sum -= *b.at(i)
		}
		return round6(sum / math.Min(b.validSeconds(), float64(n-(to-from))))
	default:
		return 0
	}
}

// resize changes the window, keeping the newest buckets that fit (Knative's ResizeWindow,
// which checks validity against the wall clock where this takes now).
func (b *buckets) resize(now time.Time, window time.Duration) {
	if window == b.window {
		return
	}
	n := bucketCount(window)
	vals := make([]float64, n)
	total := 0.0
	if now.Truncate(bucketSize).Sub(b.lastWrite) <= b.window {
		old := len(b.vals)
		i := slot(b.lastWrite)
		for range min(n, old) {
			v := *b.at(i)
			vals[((i%n)+n)%n] = v
			total += v
			i--
		}
		b.firstWrite = b.lastWrite.Add(-time.Duration(old-1) * bucketSize)
	} else {
		b.firstWrite = time.Time{}
	}
	b.window, b.vals, b.total = window, vals, total
}

// round6 rounds to six decimal places, as Knative's WindowAverage does.
func round6(f float64) float64 {
	const p = 1e6
	return math.Round(f*p) / p
}

// weightedBuckets are buckets averaged with exponentially decaying weights, newest first
// (Knative's WeightedFloat64Buckets), for metric-aggregation-algorithm: weighted-exponential.
type weightedBuckets struct {
	*buckets
	smoothing float64
}

// Knative's constants for the weighted average.
const (
	minSmoothing    = 0.2    // minExponent: the least decay per bucket
	weightPrecision = 0.9999 // the weights must sum to at least this much
)

func newWeightedBuckets(window time.Duration) *weightedBuckets {
	return &weightedBuckets{buckets: newBuckets(window), smoothing: smoothingFor(bucketCount(window))}
}

// smoothingFor is the decay that makes n buckets' weights sum to weightPrecision, at least
// minSmoothing.
func smoothingFor(n int) float64 {
	return math.Max(1-math.Pow(1-weightPrecision, 1/float64(n)), minSmoothing)
}

func (w *weightedBuckets) average(now time.Time) float64 {
	now = now.Truncate(bucketSize)
	if w.empty(now) {
		return 0
	}
	n := len(w.vals)
	count := n
	weight := w.smoothing
	if now.After(w.lastWrite) {
		// The seconds since the last write count as zeros, newest first.
		zeros := int(now.Sub(w.lastWrite) / bucketSize)
		weight *= math.Pow(1-w.smoothing, float64(zeros))
		count -= zeros
	}
	last := slot(w.lastWrite)
	sum := 0.0
	for i := range count {
		sum += *w.at(last - i) * weight
		weight *= 1 - w.smoothing
	}
	return sum
}

func (w *weightedBuckets) resize(now time.Time, window time.Duration) {
	w.buckets.resize(now, window)
	w.smoothing = smoothingFor(bucketCount(window))
}

// maxWindow keeps the highest value recorded over a trailing period, in buckets of one tick
// (Knative's max.TimeWindow with the autoscaler's tick as granularity): a value recorded in
// bucket i counts until bucket i+size. Two values in the same bucket keep the larger.
type maxWindow struct {
	size        int
	granularity int64 // seconds per bucket
	q           []indexedValue
}

// indexedValue is one entry of a maxWindow: values strictly descending, indexes ascending.
type indexedValue struct {
	index int64
	v     int
}

// newMaxWindow returns a window of period in buckets of granularity (both rounded as Knative).
func newMaxWindow(period, granularity time.Duration) *maxWindow {
	g := max(int64(granularity/time.Second), 1)
	return &maxWindow{
		size:        max(1, int(math.Ceil(float64(period)/float64(time.Duration(g)*time.Second)))),
		granularity: g,
	}
}

// record adds v at now and returns the highest value of the trailing period.
func (w *maxWindow) record(now time.Time, v int) int {
	idx := now.Unix() / w.granularity
	for len(w.q) > 0 && v >= w.q[len(w.q)-1].v {
		w.q = w.q[:len(w.q)-1]
	}
	drop := 0
	for drop < len(w.q) && idx-w.q[drop].index >= int64(w.size) {
		drop++
	}
	w.q = w.q[drop:]
	if n := len(w.q); n > 0 && w.q[n-1].index == idx {
		v = max(v, w.q[n-1].v)
		w.q = w.q[:n-1]
	}
	w.q = append(w.q, indexedValue{index: idx, v: v})
	return w.q[0].v
}
