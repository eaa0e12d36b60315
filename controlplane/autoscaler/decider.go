package autoscaler

import (
	"math"
	"time"
)

// Decision is the autoscaler's current verdict for one revision.
type Decision struct {
	// DesiredScale is the number of instances the revision should run.
	DesiredScale int
	// ActualScale is the number of ready instances, as last told by SetReady.
	ActualScale int
	// Panic says the revision is in panic mode: scaling on the panic window, never down.
	Panic bool
	// ExcessBurstCapacity is ready × TotalValue − TargetBurstCapacity − panic-window demand,
	// floored (Knative's formula); 0 when target-burst-capacity is 0, −1 when it is −1.
	ExcessBurstCapacity float64
	// ProxyMode says the revision's requests should go through extproc (Knative's activator in
	// the path): it is at zero or going there, target-burst-capacity is −1, or its excess burst
	// capacity is negative.
	ProxyMode bool
	// StableConcurrency and PanicConcurrency are the average requests in flight over the stable
	// and panic windows, across all instances.
	StableConcurrency, PanicConcurrency float64
	// StableRPS and PanicRPS are the average requests per second over the two windows.
	StableRPS, PanicRPS float64
}

// differs reports whether b changes what OnChange listeners act on.
func (d Decision) differs(b Decision) bool {
	return d.DesiredScale != b.DesiredScale || d.Panic != b.Panic || d.ProxyMode != b.ProxyMode
}

// revision is one revision's decider state (Knative's per-revision autoscaler plus the parts of
// the KPA reconciler that bound the scale and gate scale-to-zero). Guarded by Autoscaler.mu.
type revision struct {
	spec Spec
	conc series // requests in flight, per second
	rps  series // requests per second, per second

	scraped    bool      // at least one successful scrape observed this revision
	lastScrape time.Time // time of that last scrape
	haveTotal  bool      // lastTotal is a baseline for the next rps delta
	lastTotal  uint64

	ready int
	dec   Decision

	// initializing: the revision runs its initial scale until it is reached and metrics exist.
	initializing bool
	// panicTime is when the panic condition last held; zero when not panicking.
	panicTime time.Time
	// maxPanicPods is the highest scale decided during this panic (no scale down in panic).
	maxPanicPods int
	// delay holds the highest desired scale over spec.ScaleDownDelay.
	delay maxWindow
	// activeSince is when the revision last left zero (or was created).
	activeSince time.Time
	// zeroSince is when the decider first wanted zero in the current idle stretch.
	zeroSince time.Time
	// pendingZero: the decider wants zero but the grace period holds one instance.
	pendingZero bool
	// panicObserved is the latest panic-window value of the scaling metric (for burst capacity).
	panicObserved float64
}

// newRevision starts a revision's decider. When the runtime already runs at least the initial
// scale (the control plane restarted), the decider starts at once, in panic mode if more than
// one instance is ready, so that it keeps the current scale until it has a window of data
// (as Knative's autoscaler does when it restarts).
func newRevision(spec Spec, now time.Time, ready int, readyKnown bool) *revision {
	windowSecs := int(spec.StableWindow / time.Second)
	r := &revision{
		spec:        spec,
		conc:        newSeries(windowSecs),
		rps:         newSeries(windowSecs),
		ready:       ready,
		delay:       maxWindow{period: spec.ScaleDownDelay},
		activeSince: now,
	}
	initial := r.bounds(spec.InitialScale)
	switch {
	case readyKnown && ready > 0 && ready >= initial:
		r.dec.DesiredScale = r.bounds(ready)
		r.startDeciding(now)
	case initial == 0:
		r.dec.DesiredScale = 0
	default:
		r.dec.DesiredScale = initial
		r.initializing = true
	}
	r.refresh()
	return r
}

// update applies a changed Spec, keeping the metric history.
func (r *revision) update(spec Spec) {
	if spec.StableWindow != r.spec.StableWindow {
		windowSecs := int(spec.StableWindow / time.Second)
		r.conc = r.conc.resized(windowSecs)
		r.rps = r.rps.resized(windowSecs)
	}
	if spec.ScaleDownDelay != r.spec.ScaleDownDelay {
		r.delay = maxWindow{period: spec.ScaleDownDelay}
	}
	r.spec = spec
	r.dec.DesiredScale = r.bounds(r.dec.DesiredScale)
	r.refresh()
}

// bounds applies min-scale and max-scale (0: unbounded).
func (r *revision) bounds(x int) int {
	if x < r.spec.MinScale {
		x = r.spec.MinScale
	}
	if r.spec.MaxScale > 0 && x > r.spec.MaxScale {
		x = r.spec.MaxScale
	}
	return x
}

// startDeciding ends initialization; with more than one instance ready the decider begins in
// panic mode, so it never scales below the current scale before it has data.
func (r *revision) startDeciding(now time.Time) {
	r.initializing = false
	if r.ready > 1 {
		r.panicTime = now
		r.maxPanicPods = r.ready
		r.dec.Panic = true
	}
}

// observe records one scrape: s is the revision's sample, present false when the scrape did not
// mention it (no request in flight). The in-flight value fills every second since the previous
// scrape; the counter's increase, divided by the time since, fills them as requests per second.
func (r *revision) observe(now time.Time, s Sample, present bool) {
	sec := now.Unix()
	from := sec - 1
	if r.scraped {
		from = r.lastScrape.Unix()
	}
	inFlight := 0.0
	if present {
		inFlight = s.InFlight
	}
	r.conc.fill(from, sec, inFlight)
	switch {
	case present && r.haveTotal:
		var delta float64
		if s.RequestsTotal > r.lastTotal { // a drop is a proxy restart: no new requests, never negative
			delta = float64(s.RequestsTotal - r.lastTotal)
		}
		rate := delta
		if el := now.Sub(r.lastScrape).Seconds(); el > 0 {
			rate = delta / el
		}
		r.rps.fill(from, sec, rate)
	case !present && r.scraped:
		r.rps.fill(from, sec, 0)
	}
	r.haveTotal = present
	r.lastTotal = s.RequestsTotal
	r.scraped = true
	r.lastScrape = now
}

// demand records a request the proxy is holding for this revision (a poke).
func (r *revision) demand(now time.Time) {
	sec := now.Unix()
	r.conc.record(sec, 1)
	r.rps.record(sec, 1)
}

// poke reacts to a held request: from zero (or while a grace period holds the last instance)
// the revision goes to activation-scale at once.
func (r *revision) poke(now time.Time) {
	r.demand(now)
	if r.dec.DesiredScale > 0 && !r.pendingZero {
		return
	}
	if r.dec.DesiredScale == 0 {
		r.activeSince = now
	}
	r.dec.DesiredScale = max(r.dec.DesiredScale, r.bounds(max(r.spec.ActivationScale, 1)))
	r.zeroSince = time.Time{}
	r.pendingZero = false
	r.refresh()
}

// windowSecs returns the stable and panic windows in whole seconds.
func (r *revision) windowSecs() (stable, panic int64) {
	stable = max(1, int64(r.spec.StableWindow/time.Second))
	panic = max(1, int64(math.Ceil(r.spec.PanicWindow.Seconds())))
	return stable, min(panic, stable)
}

// decide runs Knative's KPA decision at now (autoscaler.Scale, then the reconciler's bounds and
// scale-to-zero gate). Without data it keeps the previous decision.
func (r *revision) decide(now time.Time, cfg *Config) {
	sec := now.Unix()
	stableN, panicN := r.windowSecs()
	sc, okC := r.conc.average(sec, stableN)
	pc, _ := r.conc.average(sec, panicN)
	sr, okR := r.rps.average(sec, stableN)
	pr, _ := r.rps.average(sec, panicN)
	r.dec.StableConcurrency, r.dec.PanicConcurrency = sc, pc
	r.dec.StableRPS, r.dec.PanicRPS = sr, pr

	observedStable, observedPanic, ok := sc, pc, okC
	if r.spec.Metric == RPS {
		observedStable, observedPanic, ok = sr, pr, okR
	}
	if ok {
		r.panicObserved = observedPanic
	}
	if r.initializing {
		if !ok || r.ready < r.dec.DesiredScale {
			r.refresh()
			return
		}
		r.startDeciding(now)
	}
	if !ok {
		r.refresh()
		return
	}

	spec := &r.spec
	readyF := math.Max(1, float64(r.ready))
	// Always allow growing by at least one instance, however conservative the rate.
	maxUp := math.Ceil(spec.MaxScaleUpRate * readyF)
	maxDown := math.Floor(readyF / spec.MaxScaleDownRate)

	dspc := math.Ceil(observedStable / spec.TargetValue)
	dppc := math.Ceil(observedPanic / spec.TargetValue)
	desiredStable := int(math.Min(math.Max(dspc, maxDown), maxUp))
	desiredPanic := int(math.Min(math.Max(dppc, maxDown), maxUp))
	if act := spec.ActivationScale; act > 1 {
		if dspc > 0 && act > desiredStable {
			desiredStable = act
		}
		if dppc > 0 && act > desiredPanic {
			desiredPanic = act
		}
	}

	overThreshold := dppc/readyF >= spec.PanicThreshold
	switch {
	case overThreshold:
		// Enter panic, or extend it while the condition holds.
		r.panicTime = now
	case !r.panicTime.IsZero() && r.panicTime.Add(spec.StableWindow).Before(now):
		// A full stable window without the panic condition: the surge is in the stable metric.
		r.panicTime = time.Time{}
		r.maxPanicPods = 0
	}

	desired := desiredStable
	if !r.panicTime.IsZero() {
		// Provision for the larger of the two windows, and never scale down while panicking.
		desired = max(desired, desiredPanic)
		r.maxPanicPods = max(r.maxPanicPods, desired)
		desired = r.maxPanicPods
	}
	if spec.ScaleDownDelay > 0 {
		desired = r.delay.record(now, desired)
	}
	desired = r.bounds(desired)

	r.pendingZero = false
	if desired == 0 {
		switch {
		case r.dec.DesiredScale == 0:
			// Already at zero (or never left it).
		case !cfg.EnableScaleToZero:
			desired = 1
		default:
			if r.zeroSince.IsZero() {
				r.zeroSince = now
			}
			// Knative keeps the last instance until the revision has been active for a stable
			// window and then in proxy mode for the grace period.
			if now.Sub(r.activeSince) < spec.StableWindow || now.Sub(r.zeroSince) < cfg.ScaleToZeroGracePeriod {
				desired = 1
				r.pendingZero = true
			}
		}
	} else {
		r.zeroSince = time.Time{}
	}
	if r.dec.DesiredScale == 0 && desired > 0 {
		r.activeSince = now
	}
	r.dec.DesiredScale = desired
	r.dec.Panic = !r.panicTime.IsZero()
	r.refresh()
}

// refresh recomputes what follows from the ready count and the last observations: actual
// scale, excess burst capacity and proxy mode.
func (r *revision) refresh() {
	r.dec.ActualScale = r.ready
	tbc := r.spec.TargetBurstCapacity
	switch {
	case tbc == 0:
		r.dec.ExcessBurstCapacity = 0
	case tbc > 0:
		r.dec.ExcessBurstCapacity = math.Floor(float64(r.ready)*r.spec.TotalValue - tbc - r.panicObserved)
	default:
		r.dec.ExcessBurstCapacity = -1
	}
	r.dec.ProxyMode = r.ready == 0 || tbc < 0 || r.dec.ExcessBurstCapacity < 0 ||
		r.dec.DesiredScale == 0 || r.pendingZero
}
