package autoscaler

import (
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// collection is one revision's metric windows (Knative's collector collection): stable and
// panic windows of concurrency and of requests per second, each its own buckets as in
// Knative, so that each window restarts on its own after a gap as long as itself.
type collection struct {
	stableConc, panicConc averager
	stableRPS, panicRPS   averager
}

func newCollection(spec *Spec) *collection {
	mk := func(w time.Duration) averager {
		if spec.Aggregation == WeightedExponential {
			return newWeightedBuckets(w)
		}
		return newBuckets(w)
	}
	return &collection{
		stableConc: mk(spec.StableWindow), panicConc: mk(spec.PanicWindow),
		stableRPS: mk(spec.StableWindow), panicRPS: mk(spec.PanicWindow),
	}
}

// recordConc and recordRPS add a second's value to both windows of the metric.
func (c *collection) recordConc(at time.Time, v float64) {
	c.stableConc.record(at, v)
	c.panicConc.record(at, v)
}

func (c *collection) recordRPS(at time.Time, v float64) {
	c.stableRPS.record(at, v)
	c.panicRPS.record(at, v)
}

// resize applies changed windows, keeping the data that fits.
func (c *collection) resize(now time.Time, stable, panicW time.Duration) {
	c.stableConc.resize(now, stable)
	c.stableRPS.resize(now, stable)
	c.panicConc.resize(now, panicW)
	c.panicRPS.resize(now, panicW)
}

// averages returns the stable and panic averages of the spec's metric; ok is false when the
// stable window holds no data (Knative's ErrNoData), except with target-burst-capacity −1,
// where Knative scrapes nothing and reads empty windows as zero.
func (c *collection) averages(now time.Time, spec *Spec) (stable, panicV float64, ok bool) {
	st, pa := c.stableConc, c.panicConc
	if spec.Metric == RPS {
		st, pa = c.stableRPS, c.panicRPS
	}
	if st.empty(now) && spec.TargetBurstCapacity != -1 {
		return 0, 0, false
	}
	return st.average(now), pa.average(now), true
}

// revision is one revision's autoscaling state: its metric windows, Knative's decider and the
// KPA reconciler's state. Guarded by Autoscaler.mu.
type revision struct {
	spec  Spec
	coll  *collection
	dec   *decider
	pa    *podAutoscaler
	hpa   *hpaScaler // the hpa class's scaler; nil for KPA
	ready int

	// The decider's status (Knative's Decider.Status): its desired scale (−1 until its first
	// valid decision) and excess burst capacity.
	desired int
	ebc     float64

	// Observations of the proxies' samples.
	lastTick   time.Time // the previous tick, or when the revision was created
	scraped    bool      // at least one tick has sampled this revision
	lastScrape time.Time // the time of that tick
	haveTotal  bool      // lastTotal is a baseline for the next rps delta
	lastTotal  uint64
	// heldTail: the last record came from demand alone (no ready instance, or no scraping
	// with target-burst-capacity −1) and was not zero, so the next quiet tick records one
	// zero second, as the activator's last report before it forgets the revision.
	heldTail bool
	// latest is what Skiff's own samples put in the newest second recorded.
	latest secondSamples

	// Last averages, for the Decision.
	stableConc, panicConc, stableRPS, panicRPS float64

	out Decision
}

// newRevision starts a revision. ready is the ready instance count when known before the
// revision (a control-plane restart): then the revision is taken as running at that scale.
func newRevision(now time.Time, cfg *Config, spec Spec, ready int, readyKnown bool) *revision {
	r := &revision{spec: spec, coll: newCollection(&spec), ready: ready, desired: -1, lastTick: now}
	if readyKnown && ready > 0 {
		r.pa = restoredPodAutoscaler(now, ready)
	} else {
		ready = 0
		r.pa = newPodAutoscaler(now, &spec)
		// A new revision's request counters start at zero: the first tick has a rate.
		r.haveTotal, r.scraped, r.lastScrape = true, true, now
	}
	r.dec = newDecider(now, &r.spec, ready, cfg.TickInterval)
	if spec.Class == HPA {
		r.hpa = newHPAScaler(&spec)
		if readyKnown && ready > 0 {
			r.hpa.replicas = ready
		}
	}
	// Knative's first estimate of the burst capacity, before any decision.
	switch tbc := spec.TargetBurstCapacity; tbc {
	case -1, 0:
		r.ebc = tbc
	default:
		r.ebc = float64(int32(float64(spec.InitialScale)*spec.TotalValue - tbc))
	}
	r.reconcile(now, cfg)
	return r
}

// update applies a changed Spec, keeping the metric history.
func (r *revision) update(now time.Time, cfg *Config, spec Spec) {
	if spec.Aggregation != r.spec.Aggregation {
		r.coll = newCollection(&spec)
	} else {
		r.coll.resize(now, spec.StableWindow, spec.PanicWindow)
	}
	r.spec = spec
	r.dec.setDelay(spec.ScaleDownDelay)
	r.reconcile(now, cfg)
}

// observe records one tick's sample: s is the revision's sample, present false when the
// scrape did not mention it (nothing in flight). Knative records a stat per second: the
// scraper's while an instance is ready (none with target-burst-capacity −1), plus the
// activator's while it sees requests. Skiff samples once per tick, so the value observed
// stands for every second since the previous tick (or since the revision was created), at
// most a stable window; seconds in which neither source would report get no record, so that
// the windows start afresh after an idle spell at zero.
func (r *revision) observe(now time.Time, s Sample, present bool) {
	from := r.lastTick
	if w := now.Add(-r.spec.StableWindow); from.Before(w) {
		from = w
	}
	r.lastTick = now
	inFlight := 0.0
	if present {
		inFlight = s.InFlight
	}
	rate, haveRate := 0.0, false
	switch {
	case present && r.haveTotal:
		var delta float64
		if s.RequestsTotal > r.lastTotal { // a drop is a proxy restart: never a negative rate
			delta = float64(s.RequestsTotal - r.lastTotal)
		}
		rate, haveRate = delta, true
		if el := now.Sub(r.lastScrape).Seconds(); el > 0 {
			rate = delta / el
		}
	case !present && r.scraped:
		haveRate = true
	}
	r.haveTotal = present
	r.lastTotal = s.RequestsTotal
	r.scraped = true
	r.lastScrape = now

	first, last := secondsIn(from, now)
	scraping := r.ready > 0 && r.spec.TargetBurstCapacity != -1
	demand := inFlight > 0 || rate > 0
	switch {
	case scraping || demand:
		r.heldTail = !scraping && demand
	case r.heldTail:
		last = first // the activator's one last, empty, report
		r.heldTail = false
	default:
		return
	}
	for sec := first; !sec.After(last); sec = sec.Add(time.Second) {
		if !sec.Equal(r.latest.sec) {
			r.latest = secondSamples{sec: sec}
		}
		r.coll.recordConc(sec, r.latest.conc.add(inFlight))
		if haveRate {
			r.coll.recordRPS(sec, r.latest.rps.add(rate))
		}
	}
}

// secondSamples is what Skiff's samples contributed to one second's buckets. Knative's
// buckets add up what the sources report in a second (the scraper's one stat and the
// activator's); several ticks within one second are samples of the same quantity, so they
// average, and a poke's request in that second is taken back from them.
type secondSamples struct {
	sec       time.Time
	conc, rps secondAverage
}

// secondAverage is one metric's samples in a second.
type secondAverage struct {
	sum   float64
	n     int
	poked float64 // recorded by pokes in this second, included in what the samples say
	put   float64 // what the samples put in the bucket so far
}

// add takes one more sample and returns the change to record in the bucket.
func (a *secondAverage) add(v float64) float64 {
	a.sum += v
	a.n++
	return a.settle()
}

// poke records one request of the activator in the second and returns the change to record.
func (a *secondAverage) poke() float64 {
	a.poked++
	return 1 + a.settle()
}

// settle brings the bucket to max(average of the samples, poked) and returns the change.
func (a *secondAverage) settle() float64 {
	want := 0.0
	if a.n > 0 {
		want = max(a.sum/float64(a.n)-a.poked, 0)
	}
	d := want - a.put
	a.put = want
	return d
}

// secondsIn returns the first and last whole second in (from, to], at least to's own.
func secondsIn(from, to time.Time) (first, last time.Time) {
	last = to.Truncate(time.Second)
	first = from.Truncate(time.Second).Add(time.Second)
	if first.After(last) {
		first = last
	}
	return first, last
}

// decide runs the decider at now and, on a valid result, stores it as the decider's status.
func (r *revision) decide(now time.Time) {
	st, pa, ok := r.coll.averages(now, &r.spec)
	if ok {
		r.stableConc, r.panicConc = r.coll.stableConc.average(now), r.coll.panicConc.average(now)
		r.stableRPS, r.panicRPS = r.coll.stableRPS.average(now), r.coll.panicRPS.average(now)
	}
	res := r.dec.scale(now, &r.spec, r.ready, st, pa, ok)
	if res.valid {
		r.desired, r.ebc = res.desired, res.ebc
	}
}

// poke is a request held by extproc: like the activator's first-request stat, one request is
// recorded now, and — as Knative's multiscaler does while the decider wants zero — the decider
// runs at once instead of at the next tick. The next sample takes that request back from the
// same second, since the held count it carries includes it. Unlike Knative, a poke also acts
// before the decider's first decision (a revision created at initial-scale 0), so that it
// starts without waiting for the next tick.
func (r *revision) poke(now time.Time, cfg *Config) {
	if r.desired > 0 || r.spec.Class != KPA {
		return
	}
	sec := now.Truncate(time.Second)
	if !sec.Equal(r.latest.sec) {
		r.latest = secondSamples{sec: sec}
	}
	r.coll.recordConc(sec, r.latest.conc.poke())
	r.coll.recordRPS(sec, r.latest.rps.poke())
	r.heldTail = r.ready == 0 || r.spec.TargetBurstCapacity == -1
	r.decide(now)
	r.reconcile(now, cfg)
}

// tick samples s (and the instances' resource use, for the hpa class), decides and reconciles.
func (r *revision) tick(now time.Time, cfg *Config, s Sample, present bool, usage map[string]runtime.InstanceUsage) {
	if r.hpa != nil {
		r.hpa.decide(now, &r.spec, usage)
		r.reconcile(now, cfg)
		return
	}
	r.observe(now, s, present)
	r.decide(now)
	r.reconcile(now, cfg)
}

// reconcile runs the KPA reconciler on the decider's status and refreshes the Decision. The
// hpa class takes its scaler's scale; another class keeps its initial scale, left to an
// external autoscaler. Both are served directly once an instance is ready, as Knative puts
// their ServerlessService in serve mode.
func (r *revision) reconcile(now time.Time, cfg *Config) {
	switch {
	case r.hpa != nil:
		r.out = Decision{DesiredScale: r.hpa.replicas, ActualScale: r.ready, ProxyMode: r.ready == 0}
		return
	case r.spec.Class != KPA:
		r.out = Decision{DesiredScale: r.spec.InitialScale, ActualScale: r.ready, ProxyMode: r.ready == 0}
		return
	}
	// Knative's KPA reconciler requeues itself whenever it changes the PodAutoscaler's status
	// (Active condition, ServerlessService mode), so a revision marked inactive goes on to zero
	// in the same instant when the activator is already in its path. Run it to that fixed point
	// (a handful of steps at most: each changes state monotonically toward the decision).
	for range 4 {
		before := r.pa.snapshot()
		r.pa.reconcile(now, cfg, &r.spec, r.desired, r.ebc, r.ready)
		if r.pa.snapshot() == before {
			break
		}
	}
	r.out = Decision{
		DesiredScale:        r.pa.replicas,
		ActualScale:         r.ready,
		Panic:               r.dec.panicking(),
		ExcessBurstCapacity: r.ebc,
		ProxyMode:           r.pa.proxy,
		StableConcurrency:   r.stableConc,
		PanicConcurrency:    r.panicConc,
		StableRPS:           r.stableRPS,
		PanicRPS:            r.panicRPS,
	}
}
