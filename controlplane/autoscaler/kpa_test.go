package autoscaler

import (
	"testing"
	"time"
)

// Constants of knative/serving pkg/reconciler/autoscaling/kpa/kpa_test.go.
const (
	kpaGracePeriod      = 60 * time.Second
	kpaStableWindow     = 5 * time.Minute
	kpaPAStableWindow   = 45 * time.Second
	kpaProgressDeadline = 121 * time.Second
)

// TestPodAutoscalerScale ports knative/serving pkg/reconciler/autoscaling/kpa/scaler_test.go
// TestScaler (and TestDisableScaleToZero): the reconciler's scale with the PA's Active
// condition, how long the activator has been in the path, and the bounds. want is the scale
// scale() returns; wantScaling whether the Deployment is patched. The unreachable-revision
// cases are left out: Skiff runs no instance for a revision in reserve.
func TestPodAutoscalerScale(t *testing.T) {
	const activationTimeout = kpaProgressDeadline + activationTimeoutBuffer
	type paState struct {
		state activeState
		for_  time.Duration // how long in that state
		init  bool
	}
	for _, tc := range []struct {
		label         string
		startReplicas int
		scaleTo       int
		minScale      int
		maxScale      int
		window        time.Duration // the window annotation (default kpaStableWindow)
		initialScale  *int
		tbc           float64
		retention     *time.Duration // the annotation; nil: absent
		progress      time.Duration  // the progress-deadline annotation
		cfgRetention  time.Duration
		noScaleToZero bool
		pa            *paState // nil: a new PA, activating since now
		proxyFor      *time.Duration
		probeFails    bool
		want          int
		wantScaling   bool
	}{
		{label: "waits to scale to zero (just before idle period)", startReplicas: 1, scaleTo: 0,
			pa: &paState{active, kpaStableWindow - time.Second, false}, want: 1},
		{label: "waits to scale to zero (just before idle period), custom PA window", startReplicas: 1, scaleTo: 0,
			window: kpaPAStableWindow, pa: &paState{active, kpaPAStableWindow - time.Second, false}, want: 1},
		{label: "custom PA window, check for standard window, no probe", startReplicas: 1, scaleTo: 0,
			window: kpaPAStableWindow, pa: &paState{active, kpaStableWindow, false}, want: 0},
		{label: "scale to 1 waiting for idle expires", startReplicas: 10, scaleTo: 0,
			pa: &paState{active, kpaStableWindow - time.Second, false}, want: 1, wantScaling: true},
		{label: "waits to scale to zero after idle period", startReplicas: 1, scaleTo: 0,
			pa: &paState{active, kpaStableWindow, false}, want: 0},
		{label: "waits to scale to zero after idle period (custom PA window)", startReplicas: 1, scaleTo: 0,
			window: kpaPAStableWindow, pa: &paState{active, kpaPAStableWindow, false}, want: 0},
		{label: "can scale to zero after grace period, but 0 PA retention", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod, false}, retention: durp(0), cfgRetention: 2 * kpaGracePeriod, want: 0, wantScaling: true},
		{label: "can't scale to zero after grace period, but before last pod retention", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod, false}, cfgRetention: 2 * kpaGracePeriod, want: 0},
		{label: "can't scale to zero after grace period, but before last pod retention, pa defined", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod, false}, retention: durp(2 * kpaGracePeriod), want: 0},
		{label: "scale to zero after grace period, and after last pod retention", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod, false}, cfgRetention: kpaGracePeriod, want: 0, wantScaling: true},
		{label: "scale to zero after grace period", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod, false}, want: 0, wantScaling: true},
		{label: "waits to scale to zero (just before grace period)", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod - time.Second, false}, want: 0},
		{label: "waits to scale to zero (just before grace period, sks short)", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod - time.Second, false}, proxyFor: durp(kpaGracePeriod - time.Second), want: 0},
		{label: "waits to scale to zero (just before grace period, sks in proxy long) and last pod timeout positive", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod - time.Second, false}, cfgRetention: 42 * time.Second, proxyFor: durp(kpaGracePeriod), want: 0, wantScaling: true},
		{label: "waits to scale to zero (just before grace period, sks in proxy long)", startReplicas: 1, scaleTo: 0,
			pa: &paState{inactive, kpaGracePeriod - time.Second, false}, proxyFor: durp(kpaGracePeriod), want: 0, wantScaling: true},
		{label: "scale to zero with TBC=-1", startReplicas: 1, scaleTo: 0, tbc: -1, probeFails: true,
			pa: &paState{inactive, kpaGracePeriod, false}, want: 0, wantScaling: true},
		{label: "scale to zero after grace period, but fail prober", startReplicas: 1, scaleTo: 0, probeFails: true,
			pa: &paState{inactive, kpaGracePeriod, false}, want: 0},
		{label: "waits to scale to zero while activating until after deadline exceeded", startReplicas: 1, scaleTo: 0,
			pa: &paState{activating, activationTimeout / 2, false}, want: -1},
		{label: "scale to zero while activating after deadline exceeded", startReplicas: 1, scaleTo: 0,
			pa: &paState{activating, activationTimeout + time.Second, false}, want: 0, wantScaling: true},
		{label: "scale to zero while activating after revision deadline exceeded", startReplicas: 1, scaleTo: 0,
			progress: 5 * time.Second, pa: &paState{activating, 5*time.Second + activationTimeoutBuffer + time.Second, false}, want: 0, wantScaling: true},
		{label: "scale down to minScale before grace period", startReplicas: 10, scaleTo: 0, minScale: 2,
			pa: &paState{inactive, kpaGracePeriod - time.Second, false}, want: 2, wantScaling: true},
		{label: "scale down to minScale after grace period", startReplicas: 10, scaleTo: 0, minScale: 2,
			pa: &paState{inactive, kpaGracePeriod, false}, want: 2, wantScaling: true},
		{label: "scales up", startReplicas: 1, scaleTo: 10, want: 10, wantScaling: true},
		{label: "scales up to maxScale", startReplicas: 1, scaleTo: 10, maxScale: 8, want: 8, wantScaling: true},
		{label: "scale up inactive revision", startReplicas: 1, scaleTo: 10,
			pa: &paState{inactive, kpaGracePeriod / 2, false}, want: 10, wantScaling: true},
		{label: "does not scale up from zero with no metrics", startReplicas: 0, scaleTo: -1,
			pa: &paState{inactive, 0, false}, want: -1},
		{label: "scales up from zero to desired one", startReplicas: 0, scaleTo: 1, want: 1, wantScaling: true},
		{label: "scales up from zero to desired high scale", startReplicas: 0, scaleTo: 10, want: 10, wantScaling: true},
		{label: "negative scale does not scale", startReplicas: 12, scaleTo: -1,
			pa: &paState{active, 0, false}, want: -1},
		{label: "initial scale attained, but now time to scale down", startReplicas: 2, scaleTo: 0, initialScale: intp(2),
			pa: &paState{active, 2 * time.Minute, true}, want: 1, wantScaling: true}, // first deactivate at 1
		{label: "haven't scaled to initial scale, override desired scale with initial scale", startReplicas: 0, scaleTo: 1, initialScale: intp(2),
			pa: &paState{activating, 0, false}, want: 2, wantScaling: true},
		{label: "initial scale reached for the first time", startReplicas: 5, scaleTo: 1, initialScale: intp(5),
			pa: &paState{activating, 0, false}, want: 5},
		{label: "reaching initial scale zero", startReplicas: 0, scaleTo: 0, initialScale: intp(0),
			pa: &paState{inactive, 0, false}, want: 0},
		// TestDisableScaleToZero.
		{label: "EnableScaleToZero == false and minScale == 0", startReplicas: 10, scaleTo: 0, noScaleToZero: true,
			pa: &paState{active, 0, false}, want: 1, wantScaling: true},
		{label: "EnableScaleToZero == false and minScale == 2", startReplicas: 10, scaleTo: 0, minScale: 2, noScaleToZero: true,
			pa: &paState{active, 0, false}, want: 2, wantScaling: true},
		{label: "EnableScaleToZero == false and desire pod is -1(initial value)", startReplicas: 10, scaleTo: -1, noScaleToZero: true,
			pa: &paState{active, 0, false}, want: -1},
	} {
		t.Run(tc.label, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			cfg := DefaultConfig()
			cfg.ScaleToZeroGracePeriod = kpaGracePeriod
			cfg.StableWindow = kpaStableWindow
			cfg.ProgressDeadline = kpaProgressDeadline
			cfg.ScaleToZeroPodRetentionPeriod = tc.cfgRetention
			cfg.EnableScaleToZero = !tc.noScaleToZero
			cfg.AllowZeroInitialScale = true
			spec := Spec{
				Class: KPA, StableWindow: kpaStableWindow, MinScale: tc.minScale, MaxScale: tc.maxScale,
				InitialScale: 1, TargetBurstCapacity: 200, ScaleToZeroPodRetention: -1, ProgressDeadline: tc.progress,
			}
			if tc.window > 0 {
				spec.StableWindow = tc.window
			}
			if tc.initialScale != nil {
				spec.InitialScale = *tc.initialScale
			}
			if tc.tbc != 0 {
				spec.TargetBurstCapacity = tc.tbc
			}
			if tc.retention != nil {
				spec.ScaleToZeroPodRetention = *tc.retention
			}
			p := newPodAutoscaler(now, &spec)
			p.replicas = tc.startReplicas
			if tc.pa != nil {
				p.state, p.since, p.initialized = tc.pa.state, now.Add(-tc.pa.for_), tc.pa.init
			}
			// The activator probe: Knative's fake answers true unless the case fails it; in
			// Skiff it is true while extproc is in the path.
			p.proxy, p.proxySince = !tc.probeFails, now
			if tc.proxyFor != nil {
				p.proxySince = now.Add(-*tc.proxyFor)
			}
			got, apply := p.scale(now, &cfg, &spec, tc.scaleTo)
			if got != tc.want {
				t.Fatalf("scale = %d, want %d", got, tc.want)
			}
			if scaling := apply && got != tc.startReplicas; scaling != tc.wantScaling {
				t.Fatalf("scaling %v (apply %v, %d → %d), want %v", scaling, apply, tc.startReplicas, got, tc.wantScaling)
			}
		})
	}
}

func durp(d time.Duration) *time.Duration { return &d }

func intp(n int) *int { return &n }

// TestPodAutoscalerActiveCondition ports the table in knative/serving
// pkg/reconciler/autoscaling/kpa/kpa.go computeActiveCondition's doc comment, and kpa_test.go's
// initial-scale cases ("initial scale > minScale, have not reached initial scale, PA still
// activating", "initial scale reached, mark PA as active", "initial scale zero: scale to zero").
func TestPodAutoscalerActiveCondition(t *testing.T) {
	for _, tc := range []struct {
		name     string
		want     int
		ready    int
		minScale int
		initial  int
		init     bool
		from     activeState
		to       activeState
		wantInit bool
	}{
		{"want 0 → inactive", 0, 3, 0, 1, true, active, inactive, true},
		{"want > 0, ready < min → activating", 2, 0, 1, 1, true, inactive, activating, true},
		{"want > 0, ready >= min → active", 2, 1, 1, 1, true, inactive, active, true},
		{"want -1, ready < min, inactive stays", -1, 0, 1, 1, true, inactive, inactive, true},
		{"want -1, ready < min, activating stays", -1, 0, 1, 1, true, activating, activating, true},
		{"want -1, ready < min, active → activating", -1, 0, 1, 1, true, active, activating, true},
		{"want -1, ready >= min, inactive stays", -1, 2, 1, 1, true, inactive, inactive, true},
		{"want -1, ready >= min, activating → active", -1, 2, 1, 1, true, activating, active, true},
		{"want -1, ready >= min, active stays", -1, 2, 1, 1, true, active, active, true},
		{"initial scale 20 not reached: activating", 20, 11, 11, 20, false, activating, activating, false},
		{"initial scale 20 reached: active and initialized", 11, 20, 0, 20, false, activating, active, true},
		{"initial scale 0: inactive and initialized at once", -1, 0, 0, 0, false, activating, inactive, true},
		{"initial scale 0 initialized: one ready instance needed", -1, 0, 0, 0, true, activating, activating, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			spec := Spec{MinScale: tc.minScale, InitialScale: tc.initial}
			p := &podAutoscaler{state: tc.from, initialized: tc.init}
			p.setActive(now, &spec, tc.want, tc.ready)
			if p.state != tc.to || p.initialized != tc.wantInit {
				t.Fatalf("state %v initialized %v, want %v %v", p.state, p.initialized, tc.to, tc.wantInit)
			}
		})
	}
}
