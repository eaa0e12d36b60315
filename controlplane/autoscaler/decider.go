package autoscaler

import (
	"math"
	"time"
)

// Decision is the autoscaler's current verdict for one revision.
type Decision struct {
	// DesiredScale is the number of instances the revision should run: what Knative's KPA
	// reconciler writes to the Deployment's spec.replicas.
	DesiredScale int
	// ActualScale is the number of ready instances, as last told by SetReady.
	ActualScale int
	// Panic says the decider is in panic mode: scaling on the panic window, never down.
	Panic bool
	// ExcessBurstCapacity is ready × TotalValue − TargetBurstCapacity − panic-window demand,
	// floored, as of the decider's last valid decision (Knative's formula); 0 when
	// target-burst-capacity is 0, −1 when it is −1.
	ExcessBurstCapacity float64
	// ProxyMode says the revision's requests should go through extproc (Knative's activator in
	// the path, its ServerlessService in proxy mode): unless the revision wants instances and
	// has non-negative excess burst capacity, or while no instance is ready.
	ProxyMode bool
	// StableConcurrency and PanicConcurrency are the average requests in flight over the stable
	// and panic windows, across all instances, at the last decision.
	StableConcurrency, PanicConcurrency float64
	// StableRPS and PanicRPS are the average requests per second over the two windows.
	StableRPS, PanicRPS float64
}

// differs reports whether b changes what OnChange listeners act on.
func (d Decision) differs(b Decision) bool {
	return d.DesiredScale != b.DesiredScale || d.Panic != b.Panic || d.ProxyMode != b.ProxyMode
}

// scaleResult is one decider evaluation (Knative's ScaleResult).
type scaleResult struct {
	desired int
	ebc     float64
	valid   bool
}

// decider is Knative's per-revision autoscaler (pkg/autoscaler/scaling/autoscaler.go): from
// the stable and panic averages of the scaling metric and the ready instance count it
// computes the desired scale, with panic mode, scale rate limits, activation scale and
// scale-down delay. It knows nothing of bounds or scale to zero: the podAutoscaler applies those.
type decider struct {
	// panicTime is when the panic condition last held; zero when not panicking.
	panicTime time.Time
	// maxPanicPods is the highest scale decided during this panic (no scale down in panic).
	// It starts at the ready count the decider was created with, as Knative's does.
	maxPanicPods int
	// delay holds the highest desired scale over the scale-down delay; nil without one.
	delay      *maxWindow
	delayOf    time.Duration // the ScaleDownDelay delay was made for
	tick       time.Duration
	lastResult scaleResult
}

// newDecider starts a decider for a revision with ready instances: with more than one, in
// panic mode, so that it keeps at least the current scale until it has a window of data
// (Knative does this for an autoscaler restart; a new revision has none ready).
func newDecider(now time.Time, spec *Spec, ready int, tick time.Duration) *decider {
	d := &decider{maxPanicPods: ready, tick: tick}
	if ready > 1 {
		d.panicTime = now
	}
	d.setDelay(spec.ScaleDownDelay)
	return d
}

// setDelay (re)creates the scale-down delay window when the delay changes.
func (d *decider) setDelay(delay time.Duration) {
	if delay == d.delayOf {
		return
	}
	d.delayOf = delay
	d.delay = nil
	if delay > 0 {
		d.delay = newMaxWindow(delay, d.tick)
	}
}

// scale is Knative's autoscaler.Scale: ok false means no data (ErrNoData), which yields an
// invalid result and changes nothing.
func (d *decider) scale(now time.Time, spec *Spec, ready int, stable, panicV float64, ok bool) scaleResult {
	if !ok {
		return scaleResult{}
	}
	readyF := math.Max(1, float64(ready))
	// Always allow growing by one instance, however conservative the rate.
	maxUp := math.Ceil(spec.MaxScaleUpRate * readyF)
	maxDown := math.Floor(readyF / spec.MaxScaleDownRate)

	dspc := math.Ceil(stable / spec.TargetValue)
	dppc := math.Ceil(panicV / spec.TargetValue)
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

	over := dppc/readyF >= spec.PanicThreshold
	switch {
	case over:
		// Begin panicking, or extend the panic while the condition holds.
		d.panicTime = now
	case !d.panicTime.IsZero() && d.panicTime.Add(spec.StableWindow).Before(now):
		// A stable window without the condition: the surge is in the stable metric now.
		d.panicTime = time.Time{}
		d.maxPanicPods = 0
	}

	desired := desiredStable
	if !d.panicTime.IsZero() {
		// Provision for the larger of the two windows, and never scale down in panic.
		desired = max(desired, desiredPanic)
		d.maxPanicPods = max(d.maxPanicPods, desired)
		desired = d.maxPanicPods
	}
	if d.delay != nil {
		desired = d.delay.record(now, desired)
	}

	ebc := -1.0
	switch tbc := spec.TargetBurstCapacity; {
	case tbc == 0:
		ebc = 0
	case tbc > 0:
		ebc = math.Floor(float64(ready)*spec.TotalValue - tbc - panicV)
	}
	d.lastResult = scaleResult{desired: desired, ebc: ebc, valid: true}
	return d.lastResult
}

// panicking reports whether the decider is in panic mode.
func (d *decider) panicking() bool { return !d.panicTime.IsZero() }
