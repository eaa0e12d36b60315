package autoscaler

import (
	"math"
	"testing"
	"time"
)

// The cases below are ported from knative/serving pkg/autoscaler/scaling/autoscaler_test.go;
// each names the test it comes from. Knative's fakes return the stable and panic averages
// directly; here each step gives them (and the ready count) to decider.scale at an explicit time.

// knativeTestSpec is autoscaler_test.go's newTestAutoscalerWithScalingMetric: 75% utilization,
// panic threshold 200%, scale rates 10, a 60s stable window.
func knativeTestSpec(target, tbc float64) Spec {
	return Spec{
		Metric: Concurrency, TargetValue: target, TotalValue: target / 0.75, TargetBurstCapacity: tbc,
		PanicThreshold: 2, MaxScaleUpRate: 10, MaxScaleDownRate: 10, StableWindow: time.Minute,
		ActivationScale: 1,
	}
}

// expectedEBC is autoscaler_test.go's: floor(target/0.75 × pods − TBC − panic concurrency).
func expectedEBC(target, tbc, panicC, pods float64) float64 {
	return math.Floor(target/0.75*pods - tbc - panicC)
}

// deciderStep is one Scale call: at is the time since the start.
type deciderStep struct {
	at            time.Duration
	ready         int
	stable, panic float64
	noData        bool
	want          int
	wantEBC       float64
	wantInvalid   bool
	wantPanic     *bool
}

func boolp(b bool) *bool { return &b }

func runDeciderSteps(t *testing.T, spec Spec, startReady int, steps []deciderStep) {
	t.Helper()
	start := time.Unix(1_700_000_000, 0)
	d := newDecider(start, &spec, startReady, 2*time.Second)
	for i, s := range steps {
		got := d.scale(start.Add(s.at), &spec, s.ready, s.stable, s.panic, !s.noData)
		if s.wantInvalid {
			if got.valid {
				t.Fatalf("step %d: %+v, want an invalid result", i, got)
			}
			continue
		}
		if !got.valid || got.desired != s.want || math.Abs(got.ebc-s.wantEBC) > 1 {
			t.Fatalf("step %d (at +%v, ready %d, stable %g, panic %g): got desired %d ebc %g valid %v, want %d ebc %g",
				i, s.at, s.ready, s.stable, s.panic, got.desired, got.ebc, got.valid, s.want, s.wantEBC)
		}
		if s.wantPanic != nil && d.panicking() != *s.wantPanic {
			t.Fatalf("step %d: panicking %v, want %v", i, d.panicking(), *s.wantPanic)
		}
	}
}

func TestDeciderKnativeScale(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       Spec
		startReady int
		steps      []deciderStep
	}{
		{
			// TestAutoscalerNoDataNoAutoscale
			name: "no data no autoscale", spec: knativeTestSpec(10, 100), startReady: 1,
			steps: []deciderStep{{ready: 1, noData: true, wantInvalid: true}},
		},
		{
			// TestAutoscalerStableModeIncreaseWithConcurrencyDefault
			name: "stable mode increase", spec: knativeTestSpec(10, 101), startReady: 1,
			steps: []deciderStep{
				{ready: 1, stable: 50, panic: 10, want: 5, wantEBC: expectedEBC(10, 101, 10, 1)},
				{ready: 1, stable: 100, panic: 10, want: 10, wantEBC: expectedEBC(10, 101, 10, 1)},
			},
		},
		{
			// TestAutoscalerStableModeIncreaseWithRPS
			name: "stable mode increase rps", spec: func() Spec { s := knativeTestSpec(10, 101); s.Metric = RPS; return s }(), startReady: 1,
			steps: []deciderStep{
				{ready: 1, stable: 50, panic: 50, want: 5, wantEBC: expectedEBC(10, 101, 50, 1)},
				{ready: 1, stable: 100, panic: 99, want: 10, wantEBC: expectedEBC(10, 101, 99, 1)},
			},
		},
		{
			// TestAutoscalerUnpanicAfterSlowIncrease
			name: "unpanic after slow increase", spec: knativeTestSpec(1, 98), startReady: 1,
			steps: []deciderStep{
				{ready: 10, stable: 11, panic: 25, want: 25, wantEBC: expectedEBC(1, 98, 25, 10), wantPanic: boolp(true)},
				{at: 30 * time.Second, ready: 40, stable: 30, panic: 41, want: 41, wantEBC: expectedEBC(1, 98, 41, 40), wantPanic: boolp(true)},
				{at: 62 * time.Second, ready: 55, stable: 50, panic: 56, want: 50, wantEBC: expectedEBC(1, 98, 56, 55), wantPanic: boolp(false)},
			},
		},
		{
			// TestAutoscalerExtendPanicWindow
			name: "extend panic window", spec: knativeTestSpec(1, 98), startReady: 1,
			steps: []deciderStep{
				{ready: 10, stable: 11, panic: 25, want: 25, wantEBC: expectedEBC(1, 98, 25, 10)},
				{at: 30 * time.Second, ready: 40, stable: 30, panic: 80, want: 80, wantEBC: expectedEBC(1, 98, 80, 40)},
				// The panic was extended at +30s: still panicking at +62s.
				{at: 62 * time.Second, ready: 80, stable: 30, panic: 30, want: 80, wantEBC: expectedEBC(1, 98, 30, 80), wantPanic: boolp(true)},
			},
		},
		{
			// TestAutoscalerStableModeDecrease
			name: "stable mode decrease", spec: knativeTestSpec(10, 98), startReady: 1,
			steps: []deciderStep{
				{ready: 8, stable: 100, panic: 100, want: 10, wantEBC: expectedEBC(10, 98, 100, 8)},
				{ready: 8, stable: 50, panic: 50, want: 5, wantEBC: expectedEBC(10, 98, 50, 8)},
			},
		},
		{
			// TestAutoscalerStableModeNoTrafficScaleToZero
			name: "no traffic scale to zero", spec: knativeTestSpec(10, 75), startReady: 1,
			steps: []deciderStep{
				{ready: 1, stable: 1, panic: 0, want: 1, wantEBC: expectedEBC(10, 75, 0, 1)},
				{ready: 1, stable: 0, panic: 0, want: 0, wantEBC: expectedEBC(10, 75, 0, 1)},
			},
		},
		{
			// TestAutoscalerActivationScale
			name: "activation scale", spec: func() Spec { s := knativeTestSpec(10, 75); s.ActivationScale = 2; return s }(), startReady: 1,
			steps: []deciderStep{
				{ready: 1, stable: 0, panic: 0, want: 0, wantEBC: expectedEBC(10, 75, 0, 1)},
				{ready: 1, stable: 1, panic: 0, want: 2, wantEBC: expectedEBC(10, 75, 0, 1)},
			},
		},
		{
			// TestAutoscalerPanicModeExponentialTrackAndStabilize
			name: "panic exponential track and stabilize", spec: knativeTestSpec(1, 101), startReady: 1,
			steps: []deciderStep{
				{ready: 1, stable: 6, panic: 6, want: 6, wantEBC: expectedEBC(1, 101, 6, 1)},
				{ready: 6, stable: 36, panic: 36, want: 36, wantEBC: expectedEBC(1, 101, 36, 6), wantPanic: boolp(true)},
				{at: time.Second, ready: 36, stable: 216, panic: 216, want: 216, wantEBC: expectedEBC(1, 101, 216, 36)},
				{at: time.Second, ready: 216, stable: 1296, panic: 1296, want: 1296, wantEBC: expectedEBC(1, 101, 1296, 216)},
				{at: 2 * time.Second, ready: 1296, stable: 1296, panic: 1296, want: 1296, wantEBC: expectedEBC(1, 101, 1296, 1296)},
			},
		},
		{
			// TestAutoscalerPanicThenUnPanicScaleDown
			name: "panic then unpanic scale down", spec: knativeTestSpec(10, 93), startReady: 1,
			steps: []deciderStep{
				{ready: 1, stable: 100, panic: 100, want: 10, wantEBC: expectedEBC(10, 93, 100, 1)},
				{ready: 10, stable: 100, panic: 1000, want: 100, wantEBC: expectedEBC(10, 93, 1000, 10)},
				{at: 30 * time.Second, ready: 10, stable: 1, panic: 1, want: 100, wantEBC: expectedEBC(10, 93, 1, 10)},
				{at: 61 * time.Second, ready: 10, stable: 1, panic: 1, want: 1, wantEBC: expectedEBC(10, 93, 1, 10)},
			},
		},
		{
			// TestAutoscalerRateLimitScaleUp
			name: "rate limit scale up", spec: knativeTestSpec(10, 61), startReady: 1,
			steps: []deciderStep{
				{ready: 1, stable: 1000, panic: 1001, want: 10, wantEBC: expectedEBC(10, 61, 1001, 1)},
				{ready: 10, stable: 1000, panic: 1001, want: 100, wantEBC: expectedEBC(10, 61, 1001, 10)},
			},
		},
		{
			// TestAutoscalerRateLimitScaleDown
			name: "rate limit scale down", spec: knativeTestSpec(10, 61), startReady: 1,
			steps: []deciderStep{
				{ready: 100, stable: 1, panic: 1, want: 10, wantEBC: expectedEBC(10, 61, 1, 100)},
				{ready: 10, stable: 1, panic: 1, want: 1, wantEBC: expectedEBC(10, 61, 1, 10)},
			},
		},
		{
			// TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound
			name: "one pod as minimum when none ready", spec: knativeTestSpec(10, 81), startReady: 1,
			steps: []deciderStep{{ready: 0, stable: 1000, panic: 888, want: 10, wantEBC: expectedEBC(10, 81, 888, 0)}},
		},
		// TestAutoscalerScale's table.
		{name: "AutoscalerNoDataAtZeroNoAutoscale", spec: knativeTestSpec(10, 100), startReady: 1,
			steps: []deciderStep{{ready: 1, want: 0, wantEBC: expectedEBC(10, 100, 0, 1)}}},
		{name: "AutoscalerStableModeUnlimitedTBC", spec: knativeTestSpec(181, -1), startReady: 1,
			steps: []deciderStep{{ready: 1, stable: 21, panic: 26, want: 1, wantEBC: -1}}},
		{name: "Autoscaler0TBC", spec: knativeTestSpec(10, 0), startReady: 1,
			steps: []deciderStep{{ready: 1, stable: 50, panic: 49, want: 5, wantEBC: 0}}},
		{name: "AutoscalerStableModeNoChange", spec: knativeTestSpec(10, 100), startReady: 1,
			steps: []deciderStep{{ready: 1, stable: 50, panic: 50, want: 5, wantEBC: expectedEBC(10, 100, 50, 1)}}},
		{name: "AutoscalerStableModeNoChangeAlreadyScaled", spec: knativeTestSpec(10, 100), startReady: 1,
			steps: []deciderStep{{ready: 5, stable: 50, panic: 50, want: 5, wantEBC: expectedEBC(10, 100, 50, 5)}}},
		{name: "AutoscalerStableModeIncreaseWithSmallScaleUpRate",
			spec: func() Spec { s := knativeTestSpec(1, 1982); s.MaxScaleUpRate = 1.1; return s }(), startReady: 1,
			steps: []deciderStep{{ready: 2, stable: 3, panic: 3.1, want: 3, wantEBC: expectedEBC(1, 1982, 3.1, 2)}}},
		{name: "AutoscalerStableModeDecreaseWithSmallScaleDownRate",
			spec: func() Spec { s := knativeTestSpec(10, 1982); s.MaxScaleDownRate = 1.1; return s }(), startReady: 1,
			steps: []deciderStep{{ready: 100, stable: 1, panic: 1, want: 90, wantEBC: expectedEBC(10, 1982, 1, 100)}}},
		{name: "AutoscalerPanicModeDoublePodCount", spec: knativeTestSpec(10, 84), startReady: 1,
			steps: []deciderStep{{ready: 1, stable: 50, panic: 100, want: 10, wantEBC: expectedEBC(10, 84, 100, 1)}}},
		{
			// AutoscalerPanicStableLargerThanPanic: started in panic with 5 ready (a restart);
			// the stable window's demand wins when larger.
			name: "AutoscalerPanicStableLargerThanPanic", spec: knativeTestSpec(1, 100), startReady: 5,
			steps: []deciderStep{{at: 5 * time.Second, ready: 5, stable: 50, panic: 30, want: 50, wantEBC: expectedEBC(1, 100, 30, 5)}},
		},
		{
			name: "AutoscalerPanicStableLessThanPanic", spec: knativeTestSpec(1, 100), startReady: 5,
			steps: []deciderStep{{at: 5 * time.Second, ready: 5, stable: 20, panic: 30, want: 30, wantEBC: expectedEBC(1, 100, 30, 5)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runDeciderSteps(t, tc.spec, tc.startReady, tc.steps)
		})
	}
}

// TestAutoscalerUpdateTarget: the decider reads the spec it is given at each decision.
func TestDeciderUpdateTarget(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	spec := knativeTestSpec(10, 77)
	d := newDecider(start, &spec, 1, 2*time.Second)
	if got := d.scale(start, &spec, 1, 100, 101, true); got.desired != 10 {
		t.Fatalf("desired %d, want 10", got.desired)
	}
	spec = Spec{TargetValue: 1, TotalValue: 1 / 0.75, TargetBurstCapacity: 71, PanicThreshold: 2,
		MaxScaleDownRate: 10, MaxScaleUpRate: 10, StableWindow: time.Minute}
	got := d.scale(start, &spec, 10, 100, 101, true)
	if got.desired != 100 || math.Abs(got.ebc-expectedEBC(1, 71, 101, 10)) > 1 {
		t.Fatalf("after the update: %+v, want 100 (ebc %g)", got, expectedEBC(1, 71, 101, 10))
	}
}

// TestStartInPanicMode: a decider created with more than one ready instance (an autoscaler
// restart) starts in panic mode holding that scale; with 0 or 1 it does not.
func TestDeciderStartInPanicMode(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	spec := Spec{TargetValue: 100, TotalValue: 120, TargetBurstCapacity: 11, PanicThreshold: 2.2,
		MaxScaleUpRate: 10, MaxScaleDownRate: 10, StableWindow: time.Minute}
	for ready := range 2 {
		d := newDecider(start, &spec, ready, 2*time.Second)
		if d.panicking() || d.maxPanicPods != ready {
			t.Fatalf("created at %d: panicking %v maxPanicPods %d", ready, d.panicking(), d.maxPanicPods)
		}
	}
	d := newDecider(start, &spec, 2, 2*time.Second)
	if !d.panicking() || d.maxPanicPods != 2 {
		t.Fatalf("created at 2: panicking %v maxPanicPods %d, want panic holding 2", d.panicking(), d.maxPanicPods)
	}
	// No data yet the next tick would mean 0; panic keeps the two instances.
	if got := d.scale(start.Add(2*time.Second), &spec, 2, 0, 0, true); got.desired != 2 {
		t.Fatalf("first decision after a restart: %d, want 2 kept", got.desired)
	}
}

// TestAutoscalerScaleDownDelay ("simple" and "gradual") and TestAutoscalerScaleDownDelayZero.
func TestDeciderScaleDownDelay(t *testing.T) {
	spec := Spec{TargetValue: 10, MaxScaleDownRate: 10, MaxScaleUpRate: 10, PanicThreshold: 100,
		ScaleDownDelay: 5 * time.Minute, StableWindow: time.Minute, TargetBurstCapacity: -1}
	runDeciderSteps(t, spec, 0, []deciderStep{
		// simple
		{at: 2 * time.Second, stable: 40, panic: 40, want: 4, wantEBC: -1},
		{at: 5 * time.Minute, want: 4, wantEBC: -1},
		{at: 5*time.Minute + 2*time.Second, want: 0, wantEBC: -1},
		// gradual
		{at: 9 * time.Minute, stable: 40, panic: 40, want: 4, wantEBC: -1},
		{at: 10 * time.Minute, stable: 30, panic: 30, want: 4, wantEBC: -1},
		{at: 11 * time.Minute, want: 4, wantEBC: -1},
		{at: 14 * time.Minute, want: 3, wantEBC: -1},
		{at: 15 * time.Minute, want: 0, wantEBC: -1},
	})

	spec.ScaleDownDelay = 0
	runDeciderSteps(t, spec, 0, []deciderStep{
		{stable: 40, panic: 40, want: 4, wantEBC: -1},
		{at: 500 * time.Millisecond, stable: 20, panic: 20, want: 2, wantEBC: -1},
	})
}
