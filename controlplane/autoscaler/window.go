package autoscaler

import "time"

// series is a per-second time series of one metric over a fixed number of seconds (the stable
// window), in a ring of buckets, like Knative's TimedFloat64Buckets. Samples landing in the same
// second are averaged. Averages follow Knative's WindowAverage: before a full window has been
// recorded, only the seconds since the first sample count; seconds after the last sample (a
// stale tail) do not count; gaps between samples count as zero.
type series struct {
	sum   []float64
	count []uint32
	first int64 // unix second of the oldest bucket that holds data (valid when has)
	last  int64 // unix second of the newest written bucket (valid when has)
	has   bool
}

// newSeries returns a series of n one-second buckets (n >= 1).
func newSeries(n int) series {
	n = max(n, 1)
	return series{sum: make([]float64, n), count: make([]uint32, n)}
}

// size is the window length in seconds.
func (s *series) size() int64 { return int64(len(s.sum)) }

// index is the ring index of a unix second.
func (s *series) index(sec int64) int {
	n := s.size()
	return int(((sec % n) + n) % n)
}

// record adds v to the bucket of second sec.
func (s *series) record(sec int64, v float64) {
	n := s.size()
	switch {
	case !s.has || sec-s.last >= n:
		// First sample, or nothing for a whole window: start over.
		clear(s.sum)
		clear(s.count)
		s.first, s.last, s.has = sec, sec, true
	case sec > s.last:
		for t := s.last + 1; t <= sec; t++ {
			i := s.index(t)
			s.sum[i], s.count[i] = 0, 0
		}
		s.last = sec
		if s.first < sec-n+1 {
			s.first = sec - n + 1
		}
	case sec <= s.last-n:
		return // older than the window
	case sec < s.first:
		for t := sec; t < s.first; t++ {
			i := s.index(t)
			s.sum[i], s.count[i] = 0, 0
		}
		s.first = sec
	}
	i := s.index(sec)
	s.sum[i] += v
	s.count[i]++
}

// fill records v in every second of (from, to]: the value observed by a scrape at `to` stands
// for the seconds since the previous scrape at `from`. When to <= from (two scrapes in one
// second) v is averaged into the bucket of `to`.
func (s *series) fill(from, to int64, v float64) {
	if to <= from {
		s.record(to, v)
		return
	}
	from = max(from, to-s.size())
	for t := from + 1; t <= to; t++ {
		s.record(t, v)
	}
}

// average is the mean over the last n seconds ending at now. ok is false when nothing was
// recorded within the whole (stable) window: Knative's "no data".
func (s *series) average(now int64, n int64) (avg float64, ok bool) {
	if !s.has || now-s.last >= s.size() {
		return 0, false
	}
	lo := max(now-n+1, s.first, s.last-s.size()+1)
	hi := min(now, s.last)
	if hi < lo {
		return 0, true
	}
	var total float64
	for t := lo; t <= hi; t++ {
		if i := s.index(t); s.count[i] > 0 {
			total += s.sum[i] / float64(s.count[i])
		}
	}
	return total / float64(hi-lo+1), true
}

// resized returns a series of n buckets holding this one's most recent data.
func (s *series) resized(n int) series {
	out := newSeries(n)
	if out.size() == s.size() {
		return *s
	}
	if !s.has {
		return out
	}
	for t := max(s.first, s.last-out.size()+1); t <= s.last; t++ {
		if i := s.index(t); s.count[i] > 0 {
			j := out.index(t)
			out.sum[j], out.count[j] = s.sum[i], s.count[i]
		}
	}
	out.has = true
	out.last = s.last
	out.first = max(s.first, s.last-out.size()+1)
	return out
}

// maxWindow keeps the highest value recorded over a trailing period (Knative's max.TimeWindow),
// as a monotonic queue: O(1) amortized per record.
type maxWindow struct {
	period time.Duration
	q      []timedValue // times ascending, values strictly descending
}

// timedValue is one entry of a maxWindow.
type timedValue struct {
	at time.Time
	v  int
}

// record adds v at time now and returns the highest value of the trailing period.
func (w *maxWindow) record(now time.Time, v int) int {
	for len(w.q) > 0 && w.q[len(w.q)-1].v <= v {
		w.q = w.q[:len(w.q)-1]
	}
	w.q = append(w.q, timedValue{at: now, v: v})
	cut := now.Add(-w.period)
	drop := 0
	for drop < len(w.q)-1 && !w.q[drop].at.After(cut) {
		drop++
	}
	if drop > 0 {
		w.q = append(w.q[:0], w.q[drop:]...)
	}
	return w.q[0].v
}
