package autoscaler

import "time"

// activationTimeoutBuffer is what Knative adds to the progress deadline before it gives up on
// a revision that does not activate and lets it go to zero.
const activationTimeoutBuffer = 30 * time.Second

// activeState is the PodAutoscaler's Active condition.
type activeState int

const (
	// activating: Active=Unknown, waiting for the instances it needs to become ready.
	activating activeState = iota
	// active: Active=True.
	active
	// inactive: Active=False, the revision is not receiving traffic (at or going to zero).
	inactive
)

// String names the state as Knative's condition does.
func (s activeState) String() string {
	switch s {
	case active:
		return "Active"
	case inactive:
		return "Inactive"
	}
	return "Activating"
}

// podAutoscaler is what Knative's KPA reconciler (pkg/reconciler/autoscaling/kpa: kpa.go and
// scaler.go) keeps for a revision: the Active condition and when it last changed, whether the
// initial scale was reached, whether the activator is in the path and since when (the
// ServerlessService's ActivatorEndpointsPopulated condition), and the scale it last applied to
// the Deployment. reconcile runs its ReconcileKind on the decider's latest output.
type podAutoscaler struct {
	state       activeState
	since       time.Time // when state last changed
	initialized bool      // ScaleTargetInitialized: the initial scale was reached once
	proxy       bool      // the activator (extproc) is in the path
	proxySince  time.Time
	replicas    int // the Deployment's spec.replicas
	want        int // the last scale computed, -1 when unknown
}

// newPodAutoscaler starts the reconciler's state for a new revision, whose Deployment is
// created with the initial scale and whose ServerlessService starts in proxy mode.
func newPodAutoscaler(now time.Time, spec *Spec) *podAutoscaler {
	return &podAutoscaler{
		state: activating, since: now,
		proxy: true, proxySince: now,
		replicas: spec.InitialScale, want: -1,
	}
}

// restoredPodAutoscaler is the state of a revision already running ready instances when the
// autoscaler starts (a control-plane restart): Knative keeps its PodAutoscaler's status, so
// the revision is active, initialized and at its current scale.
func restoredPodAutoscaler(now time.Time, ready int) *podAutoscaler {
	return &podAutoscaler{
		state: active, since: now, initialized: true,
		proxy: true, proxySince: now,
		replicas: ready, want: -1,
	}
}

// reconcile is one run of Knative's KPA ReconcileKind with the decider's desired scale (dd, −1
// before its first valid decision) and excess burst capacity, and ready instances: the scale
// (bounds, initial scale, scale-to-zero gate), the ServerlessService mode, then the Active
// condition.
func (p *podAutoscaler) reconcile(now time.Time, cfg *Config, spec *Spec, dd int, ebc float64, ready int) {
	want, apply := p.scale(now, cfg, spec, dd)
	if apply {
		p.replicas = want
	}
	p.want = want

	// The activator leaves the path only when the revision wants instances and has burst
	// capacity to spare; it backs the revision whenever no instance is ready.
	serve := want > 0 && ebc >= 0
	inPath := !serve || ready == 0
	if inPath && !p.proxy {
		p.proxySince = now
	}
	p.proxy = inPath

	p.setActive(now, spec, want, ready)
}

// scale is Knative's scaler.scale: −1 from the decider leaves the scale alone unless the
// revision is activating; the initial scale is a floor until it was reached once; then min
// and max scale; then handleScaleToZero. apply false means the Deployment is left as it is.
func (p *podAutoscaler) scale(now time.Time, cfg *Config, spec *Spec, dd int) (int, bool) {
	if dd < 0 && p.state != activating {
		return dd, false
	}
	lo, hi := spec.MinScale, spec.MaxScale
	if spec.InitialScale > 1 && !p.initialized {
		lo = max(lo, spec.InitialScale)
	}
	return p.scaleToZero(now, cfg, spec, applyBounds(lo, hi, dd))
}

// applyBounds is Knative's: below lo gives lo (checked first), above a non-zero hi gives hi.
func applyBounds(lo, hi, x int) int {
	if x < lo {
		return lo
	}
	if hi != 0 && x > hi {
		return hi
	}
	return x
}

// scaleToZero is Knative's handleScaleToZero. A revision goes to zero only once it has been
// active a stable window (then it is marked inactive, keeping its instances), and then either
// inactive for max(grace period, pod retention), or — after the pod retention — with the
// activator in its path for the grace period. A revision that never activates goes to zero
// after the progress deadline plus 30s.
func (p *podAutoscaler) scaleToZero(now time.Time, cfg *Config, spec *Spec, desired int) (int, bool) {
	if desired != 0 {
		return desired, true
	}
	if !cfg.EnableScaleToZero {
		return 1, true
	}
	in := now.Sub(p.since)
	switch p.state {
	case activating:
		deadline := cfg.ProgressDeadline
		if spec.ProgressDeadline > 0 {
			deadline = spec.ProgressDeadline
		}
		if in > deadline+activationTimeoutBuffer {
			return 0, true
		}
		return -1, false
	case active:
		if in >= spec.StableWindow {
			return 0, false // mark inactive; the instances stay for now
		}
		return 1, true
	}
	if spec.TargetBurstCapacity != -1 && !p.proxy {
		// Knative probes that the activator is in the path before it goes further.
		return 0, false
	}
	retention := cfg.ScaleToZeroPodRetentionPeriod
	if spec.ScaleToZeroPodRetention >= 0 {
		retention = spec.ScaleToZeroPodRetention
	}
	if in >= max(cfg.ScaleToZeroGracePeriod, retention) {
		return 0, true
	}
	if retention > 0 && in < retention {
		return 0, false
	}
	proxyFor := time.Duration(0)
	if p.proxy {
		proxyFor = now.Sub(p.proxySince)
	}
	if cfg.ScaleToZeroGracePeriod-proxyFor <= 0 {
		return 0, true
	}
	return 0, false
}

// setActive is Knative's computeActiveCondition: the revision needs max(min-scale, initial
// scale) ready instances to be active the first time, max(min-scale, 1) afterwards; wanting
// zero makes it inactive.
func (p *podAutoscaler) setActive(now time.Time, spec *Spec, want, ready int) {
	minReady := max(spec.MinScale, 1)
	if !p.initialized {
		minReady = max(spec.MinScale, spec.InitialScale)
	}
	if ready >= minReady {
		p.initialized = true
	}
	switch {
	case want == 0 || minReady == 0:
		p.mark(now, inactive)
	case ready < minReady:
		if want > 0 || p.state != inactive {
			p.mark(now, activating)
		} else {
			p.mark(now, inactive)
		}
	default:
		if want > 0 || p.state != inactive {
			p.mark(now, active)
		}
	}
}

// paState is what one reconcile may change; equal snapshots mean the reconciler settled.
type paState struct {
	state       activeState
	since       time.Time
	replicas    int
	want        int
	proxy       bool
	proxySince  time.Time
	initialized bool
}

func (p *podAutoscaler) snapshot() paState {
	return paState{p.state, p.since, p.replicas, p.want, p.proxy, p.proxySince, p.initialized}
}

// mark moves the Active condition to s; its transition time changes only with its status.
func (p *podAutoscaler) mark(now time.Time, s activeState) {
	if p.state != s {
		p.state, p.since = s, now
	}
}
