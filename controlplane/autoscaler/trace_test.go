package autoscaler

import (
	"testing"
	"time"
)

// Trace tests drive the Autoscaler tick by tick (2s ticks on a fake clock, as Knative's
// multiscaler ticks) and compare DesiredScale — what Knative's KPA reconciler writes to the
// Deployment — after every tick with a sequence worked out by hand from Knative's code:
//
//   - the windows: pkg/autoscaler/aggregation/bucketing.go (a record per second; the average
//     runs from the first write to the last, at most a window; nothing is recorded while no
//     instance is ready except the activator's held requests);
//   - the decider: pkg/autoscaler/scaling/autoscaler.go Scale (dspc = ceil(stable/target),
//     dppc = ceil(panic/target), rate limits ceil(up × ready) and floor(ready / down), panic
//     when dppc/ready ≥ threshold, no scale down in panic, the scale-down-delay maximum);
//   - the reconciler: pkg/reconciler/autoscaling/kpa/scaler.go scale and handleScaleToZero,
//     kpa.go computeActiveCondition and the ServerlessService mode.
//
// Times: the revision is created at T0 (an even second); tick k runs at T0+2k and records its
// sample for the seconds T0+2k-1 and T0+2k. A poke comes a second after the previous tick.

// follow as a step's ready count means the runtime has converged on the previous decision.
const follow = -1

// traceStep is one tick: ready instances and demand just before it, and the expected decision.
type traceStep struct {
	ready    int     // SetReady before the tick; follow: the previous DesiredScale
	inFlight float64 // the sample's requests in flight (proxy plus held)
	rps      float64 // requests per second over the tick (the counter grows by 2 × rps)
	poke     bool    // extproc pokes just before the tick
	want     int
}

// steps repeats one step n times.
func steps(n int, s traceStep) []traceStep {
	out := make([]traceStep, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// seq concatenates step lists.
func seq(parts ...[]traceStep) []traceStep {
	var out []traceStep
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// one is a single step.
func one(s traceStep) []traceStep { return []traceStep{s} }

type traceCase struct {
	name      string
	source    string // the Knative test or formula the expectations come from
	anns      map[string]string
	cc        int64
	cfg       func(*Config)
	readyAtT0 int // SetReady right after the revision is created (the first instance came up)
	wantAtT0  int // DesiredScale right after creation
	steps     []traceStep
}

func runTrace(t *testing.T, tc traceCase) {
	t.Helper()
	cfg := DefaultConfig()
	if tc.cfg != nil {
		tc.cfg(&cfg)
	}
	h := newHarness(t, cfg)
	h.upsert(key, tc.anns, tc.cc)
	if tc.readyAtT0 > 0 {
		h.as.SetReady(key, tc.readyAtT0)
	}
	if d := h.decision(key); d.DesiredScale != tc.wantAtT0 {
		t.Fatalf("at creation: desired %d, want %d (%+v)", d.DesiredScale, tc.wantAtT0, d)
	}
	var total uint64
	got := make([]int, 0, len(tc.steps))
	want := make([]int, 0, len(tc.steps))
	for _, s := range tc.steps {
		ready := s.ready
		if ready == follow {
			ready = h.decision(key).DesiredScale
		}
		h.as.SetReady(key, ready)
		total += uint64(s.rps * 2)
		h.metrics.mu.Lock()
		h.metrics.samples[key] = Sample{InFlight: s.inFlight, RequestsTotal: total}
		h.metrics.mu.Unlock()
		if s.poke {
			// A request is held a second after the previous tick.
			h.clock.Advance(time.Second)
			h.as.Poke(key)
			h.clock.Advance(h.cfg.TickInterval - time.Second)
		} else {
			h.clock.Advance(h.cfg.TickInterval)
		}
		if err := h.as.Tick(t.Context()); err != nil {
			t.Fatal(err)
		}
		got = append(got, h.decision(key).DesiredScale)
		want = append(want, s.want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: first difference at tick %d (T0+%ds): desired %d, want %d\n got %v\nwant %v",
				tc.source, i+1, 2*(i+1), got[i], want[i], got, want)
		}
	}
}

func TestTraces(t *testing.T) {
	util100 := func(target string, more ...string) map[string]string {
		m := map[string]string{TargetAnnotationKey: target, TargetUtilizationPercentageAnnotationKey: "100"}
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	allowZero := func(c *Config) { c.AllowZeroInitialScale = true }

	cases := []traceCase{
		{
			// containerConcurrency 10: target 10 × 70% = 7. Tick 1: stable = panic = 50 →
			// ceil(50/7) = 8, and 8/1 ≥ 2 panics; every later tick keeps 8 (8/8 < 2, stable 8).
			name: "steady cc 10 with 50 in flight", source: "autoscaler.go Scale, ceil(50/7)",
			cc: 10, readyAtT0: 1, wantAtT0: 1,
			steps: seq(one(traceStep{ready: 1, inFlight: 50, want: 8}),
				steps(60, traceStep{ready: follow, inFlight: 50, want: 8})),
		},
		{
			// Target 10 (util 100). 40 ticks at 10 in flight: 1. Burst to 100 at tick 41:
			// stable = (58×10+2×100)/60 = 13 → 2; panic (6s) = (4×10+2×100)/6 = 40 → 4, 4/1 ≥ 2
			// panics → 4. Tick 42 (ready 4): panic (2×10+4×100)/6 = 70 → 7. Tick 43: panic 100
			// → 10. Panic holds 10 (never down), then stable is 100 too.
			name: "burst", source: "autoscaler_test.go TestAutoscalerPanicModeExponentialTrackAndStabilize (formula)",
			anns: util100("10"), readyAtT0: 1, wantAtT0: 1,
			steps: seq(steps(40, traceStep{ready: follow, inFlight: 10, want: 1}),
				one(traceStep{ready: follow, inFlight: 100, want: 4}),
				one(traceStep{ready: follow, inFlight: 100, want: 7}),
				steps(40, traceStep{ready: follow, inFlight: 100, want: 10})),
		},
		{
			// Default target-burst-capacity 211: ready × 10 − 211 < 0, so the activator is in
			// the path from the start. Load 5 on target 10 until tick 40 (second T0+80). The
			// stable window is all zeros first at tick 70 (T0+81..T0+140): the decider wants 0;
			// active for 140s ≥ 60s, so the PA turns inactive; that status change requeues the
			// PA (kpa/controller.go: the PA informer enqueues it), and inactive, proxied for
			// 140s ≥ the 30s grace period, it goes to 0 on the same tick. Then nothing is recorded
			// and it stays 0.
			name: "ramp to zero, target-burst-capacity 211", source: "scaler.go handleScaleToZero (active ≥ stable window, then activator in path ≥ grace)",
			anns: util100("10"), readyAtT0: 1, wantAtT0: 1,
			steps: seq(steps(40, traceStep{ready: follow, inFlight: 5, want: 1}),
				steps(29, traceStep{ready: follow, want: 1}),
				steps(11, traceStep{ready: follow, want: 0})),
		},
		{
			// target-burst-capacity 0: excess burst capacity is 0, so the revision is served
			// directly once ready. Tick 70 wants 0: inactive and the activator enters the path
			// at T0+140; zero once inactive (and proxied) for the 30s grace: tick 85 (T0+170).
			name: "ramp to zero, target-burst-capacity 0", source: "scaler.go handleScaleToZero (ProxyFor counts from the activator entering the path)",
			anns: util100("10", TargetBurstCapacityAnnotationKey, "0"), readyAtT0: 1, wantAtT0: 1,
			steps: seq(steps(40, traceStep{ready: follow, inFlight: 5, want: 1}),
				steps(44, traceStep{ready: follow, want: 1}),
				steps(10, traceStep{ready: follow, want: 0})),
		},
		{
			// target-burst-capacity −1: nothing is scraped, only the activator reports while it
			// sees requests, plus one empty report (second T0+81). The stable average leaves out
			// the seconds after the last report, so it stays 10/3 at tick 69 (seconds 79..81) and
			// is 0 at tick 70 (only second 81 left); inactive and, requeued, zero at 70.
			name: "ramp to zero, target-burst-capacity -1", source: "bucketing.go WindowAverage (stale tail) + scaler.go",
			anns: util100("10", TargetBurstCapacityAnnotationKey, "-1"), readyAtT0: 1, wantAtT0: 1,
			steps: seq(steps(40, traceStep{ready: follow, inFlight: 5, want: 1}),
				steps(29, traceStep{ready: follow, want: 1}),
				steps(11, traceStep{ready: follow, want: 0})),
		},
		{
			// Scale to zero disabled: handleScaleToZero returns 1.
			name: "scale to zero disabled", source: "scaler_test.go TestDisableScaleToZero",
			anns: util100("10"), readyAtT0: 1, wantAtT0: 1,
			cfg: func(c *Config) { c.EnableScaleToZero = false },
			steps: seq(steps(5, traceStep{ready: follow, inFlight: 5, want: 1}),
				steps(100, traceStep{ready: follow, want: 1})),
		},
		{
			// initial-scale 0: created inactive at 0. Idle ticks record nothing (no instance).
			// Held requests (5, target 10) at tick 11: a fresh window, stable 5 → 1. The poke
			// acts before the tick (the decider had not decided yet: a documented difference).
			name: "initial-scale 0 then a request", source: "kpa.go computeActiveCondition (minReady 0) + autoscaler.go",
			anns: util100("10", InitialScaleAnnotationKey, "0"), cfg: allowZero, wantAtT0: 0,
			steps: seq(steps(10, traceStep{ready: 0, want: 0}),
				one(traceStep{ready: 0, inFlight: 5, poke: true, want: 1}),
				steps(3, traceStep{ready: 0, inFlight: 5, want: 1}),
				steps(3, traceStep{ready: 1, inFlight: 5, want: 1})),
		},
		{
			// initial-scale 1 (default), idle: active once its instance is ready (T0); the
			// decider wants 0 from tick 1 but the PA keeps 1 until active a stable window
			// (tick 30, T0+60: inactive), and requeued by that change, the activator has been in
			// the path (TBC 211, target 100: 100−211 < 0) for ≥ 30s: 0 at tick 30.
			name: "initial-scale 1 idle", source: "scaler.go handleScaleToZero",
			readyAtT0: 1, wantAtT0: 1,
			steps: seq(steps(29, traceStep{ready: follow, want: 1}),
				steps(6, traceStep{ready: follow, want: 0})),
		},
		{
			// initial-scale 3, idle, instances ready one per tick. The initial scale is a floor
			// until reached (no panic mode: the decider was created with none ready). Tick 2:
			// the decider wants floor(2/2) = 1, floored to 3. Ready 3 before tick 3 initializes
			// (active at T0+4); tick 3 wants floor(3/2) = 1 and nothing holds 3 any more. Then 1
			// until active a stable window (T0+64, tick 32: inactive, and requeued, 0).
			name: "initial-scale 3 idle", source: "scaler.go scale (initial scale as min) + kpa.go computeActiveCondition",
			anns: map[string]string{InitialScaleAnnotationKey: "3"}, wantAtT0: 3,
			steps: seq(one(traceStep{ready: 1, want: 3}),
				one(traceStep{ready: 2, want: 3}),
				one(traceStep{ready: 3, want: 1}),
				steps(28, traceStep{ready: follow, want: 1}),
				steps(6, traceStep{ready: follow, want: 0})),
		},
		{
			// initial-scale 1 and 50 requests held while the first instance takes 10s to be
			// ready: the decider acts on the held requests at once: ceil(50/7) = 8.
			name: "cold start with 50 held, cc 10", source: "scaler.go scale (activating: act on metrics)",
			cc: 10, wantAtT0: 1,
			steps: seq(steps(5, traceStep{ready: 0, inFlight: 50, want: 8}),
				steps(10, traceStep{ready: follow, inFlight: 50, want: 8})),
		},
		{
			// activation-scale 3 on target 10: one request (dspc 1 > 0) means 3 while the
			// stable window holds it (seconds T0+1, T0+2). Tick 31 (window T0+3..T0+62) is all
			// zeros: the activation scale no longer applies, floor(3/2) = 1. Tick 32: ready 1
			// wants 0; active since T0+2 for 62s: inactive and, requeued, zero.
			name: "activation-scale 3", source: "autoscaler_test.go TestAutoscalerActivationScale",
			anns: util100("10", ActivationScaleAnnotationKey, "3", InitialScaleAnnotationKey, "0"), cfg: allowZero, wantAtT0: 0,
			steps: seq(one(traceStep{ready: 0, inFlight: 1, want: 3}),
				steps(29, traceStep{ready: follow, want: 3}),
				one(traceStep{ready: follow, want: 1}),
				steps(4, traceStep{ready: follow, want: 0})),
		},
		{
			// scale-down-delay 10s, window 6s (panic window round(0.6s) = 1s), target 10: 40 in
			// flight → 4. From tick 10 demand 10: the decider asks 3, 2, 2, 2 (rate limit
			// floor(4/2) = 2) but the delay holds the maximum of the last 5 ticks: 4 until
			// tick 13, 3 at 14; then ready 3 allows 1, held at 2 for ticks 15-18, 1 from tick 19.
			name: "scale-down-delay", source: "autoscaler_test.go TestAutoscalerScaleDownDelay + max/timewindow.go",
			anns:      util100("10", ScaleDownDelayAnnotationKey, "10s", WindowAnnotationKey, "6s"),
			readyAtT0: 1, wantAtT0: 1,
			steps: seq(steps(9, traceStep{ready: follow, inFlight: 40, want: 4}),
				steps(4, traceStep{ready: follow, inFlight: 10, want: 4}),
				one(traceStep{ready: follow, inFlight: 10, want: 3}),
				steps(4, traceStep{ready: follow, inFlight: 10, want: 2}),
				steps(5, traceStep{ready: follow, inFlight: 10, want: 1})),
		},
		{
			// min-scale 2: the bounds apply from creation (Knative applies min to the
			// activating revision's unknown scale). 50 in flight on target 10 panics at tick 1
			// (5/2 ≥ 2): 5 held until a stable window after (tick 32), then the stable window
			// asks 1 (seconds 5, 6 of 50 left), rate-limited to floor(5/2) = 2, and min 2 holds.
			name: "min-scale 2", source: "scaler.go applyBounds; scaler_test.go \"scale down to minScale\"",
			anns: util100("10", MinScaleAnnotationKey, "2"), readyAtT0: 1, wantAtT0: 2,
			steps: seq(steps(3, traceStep{ready: follow, inFlight: 50, want: 5}),
				steps(28, traceStep{ready: follow, want: 5}),
				steps(60, traceStep{ready: follow, want: 2})),
		},
		{
			// max-scale 3 caps ceil(100/10) = 10.
			name: "max-scale 3", source: "scaler_test.go \"scales up to maxScale\"",
			anns: util100("10", MaxScaleAnnotationKey, "3"), readyAtT0: 1, wantAtT0: 1,
			steps: steps(20, traceStep{ready: follow, inFlight: 100, want: 3}),
		},
		{
			// max-scale-up-rate 2: ceil(2 × ready) per decision: 2, 4, 8, then 10.
			name: "max scale up rate", source: "autoscaler_test.go TestAutoscalerRateLimitScaleUp",
			anns: util100("10"), readyAtT0: 1, wantAtT0: 1,
			cfg: func(c *Config) { c.MaxScaleUpRate = 2 },
			steps: seq(one(traceStep{ready: follow, inFlight: 100, want: 2}),
				one(traceStep{ready: follow, inFlight: 100, want: 4}),
				one(traceStep{ready: follow, inFlight: 100, want: 8}),
				steps(5, traceStep{ready: follow, inFlight: 100, want: 10})),
		},
		{
			// max-scale-down-rate 4, window 6s: 160 in flight → 16 (panic ends 6s after its
			// last condition, at tick 5). Demand 0 from tick 11: the 6s stable window empties over three
			// ticks ((4×160)/6 → 11, (2×160)/6 → 6, then 0), each bounded by floor(ready/4):
			// 11 → floor(16/4)=4 < 11 so 11; then 6 → floor(11/4)=2 so 6; then 0 → floor(6/4)=1
			// so 1; then 0 wanted with ready 1 — active ≥ 6s: inactive, then 0 (TBC 211).
			name: "max scale down rate", source: "autoscaler_test.go TestAutoscalerRateLimitScaleDown",
			anns: util100("10", WindowAnnotationKey, "6s"), readyAtT0: 1, wantAtT0: 1,
			cfg: func(c *Config) { c.MaxScaleDownRate = 4 },
			steps: seq(steps(10, traceStep{ready: follow, inFlight: 160, want: 16}),
				one(traceStep{ready: follow, want: 11}),
				one(traceStep{ready: follow, want: 6}),
				one(traceStep{ready: follow, want: 1}),
				one(traceStep{ready: follow, want: 1}),
				steps(3, traceStep{ready: follow, want: 0})),
		},
		{
			// containerConcurrency 10 caps a target annotation of 50: ceil(50/7) = 8, not
			// ceil(50/35) = 2.
			name: "cc caps the target annotation", source: "target.go ResolveMetricTarget",
			anns: map[string]string{TargetAnnotationKey: "50"}, cc: 10, readyAtT0: 1, wantAtT0: 1,
			steps: steps(10, traceStep{ready: follow, inFlight: 50, want: 8}),
		},
		{
			// rps on target 10 (util 100): a new revision's counter starts at 0, so tick 1 has
			// a rate: 50 rps → 5 (panics: 5/1 ≥ 2). Then 100 rps from tick 21, still in that
			// panic (until T0+62): the 6s panic window climbs (4×50+2×100)/6 → 7,
			// (2×50+4×100)/6 → 9, then 100 → 10, held while panicking.
			name: "rps target 10", source: "autoscaler_test.go TestAutoscalerStableModeIncreaseWithRPS",
			anns: util100("10", MetricAnnotationKey, RPS), readyAtT0: 1, wantAtT0: 1,
			steps: seq(steps(20, traceStep{ready: follow, rps: 50, want: 5}),
				one(traceStep{ready: follow, rps: 100, want: 7}),
				one(traceStep{ready: follow, rps: 100, want: 9}),
				steps(9, traceStep{ready: follow, rps: 100, want: 10}),
				// Tick 32 (T0+64) ends the panic; the stable window, (36×50+24×100)/60 = 70,
				// asks 7.
				one(traceStep{ready: follow, rps: 100, want: 7})),
		},
		{
			// rps with Knative's default target 200 × 70% = 140: 300 rps → ceil(300/140) = 3.
			name: "rps default target", source: "config.go requests-per-second-target-default 200",
			anns: map[string]string{MetricAnnotationKey: RPS}, readyAtT0: 1, wantAtT0: 1,
			steps: steps(20, traceStep{ready: follow, rps: 300, want: 3}),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runTrace(t, tc) })
	}
}

// TestTraceScaleFromZeroAfterIdle: after a long idle spell at zero nothing is recorded, so a
// burst meets a fresh window and scales at once to ceil(50/7) = 8, as Knative's (issue: zeros
// recorded while no instance existed diluted the window).
func TestTraceScaleFromZeroAfterIdle(t *testing.T) {
	runTrace(t, traceCase{
		name: "scale from zero after idle", source: "collector.go (no scrape without pods) + bucketing.go (window starts over)",
		cc: 10, readyAtT0: 1, wantAtT0: 1,
		steps: seq(steps(29, traceStep{ready: follow, want: 1}),
			steps(101, traceStep{ready: follow, want: 0}),
			one(traceStep{ready: 0, inFlight: 50, poke: true, want: 8}),
			steps(5, traceStep{ready: follow, inFlight: 50, want: 8})),
	})
}

// TestTracePokeDoesNotHalveDemand: with cc 10 and 50 requests in flight (40 held by extproc,
// which pokes every second), the held requests are demand added to the proxy's, and the pokes
// change nothing once the decider wants instances: 8 throughout, not 4.
func TestTracePokeDoesNotHalveDemand(t *testing.T) {
	runTrace(t, traceCase{
		name: "pokes while saturated", source: "multiscaler.go Poke (only while the decider wants 0)",
		cc: 10, readyAtT0: 1, wantAtT0: 1,
		steps: seq(one(traceStep{ready: 1, inFlight: 50, poke: true, want: 8}),
			steps(40, traceStep{ready: follow, inFlight: 50, poke: true, want: 8})),
	})
}

// TestSubSecondTicksAverageWithinASecond: with ticks shorter than a second (the e2e tests
// tick every 200ms) the samples of one second are one quantity sampled several times, so
// they average; they must not add up as Knative's distinct sources do. A poke in such a
// second counts its request at most once.
func TestSubSecondTicksAverageWithinASecond(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TickInterval = 200 * time.Millisecond
	h := newHarness(t, cfg)
	h.upsert(key, map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0)
	h.as.SetReady(key, 1)
	h.metrics.setInFlight(key, 30)
	for range 50 {
		h.tick()
		h.converge(key)
	}
	if d := h.decision(key); d.DesiredScale != 3 || d.StableConcurrency != 30 || d.PanicConcurrency != 30 {
		t.Fatalf("30 in flight sampled every 200ms: %+v, want 3 instances, stable and panic 30", d)
	}

	// At zero, a poke and ticks in the same second: the held request is counted once.
	h2 := newHarness(t, func() Config { c := cfg; c.AllowZeroInitialScale = true; return c }())
	h2.upsert(key, map[string]string{InitialScaleAnnotationKey: "0", TargetAnnotationKey: "0.5", TargetUtilizationPercentageAnnotationKey: "100"}, 0)
	h2.tick()
	h2.as.Poke(key)
	if d := h2.decision(key); d.DesiredScale != 2 {
		t.Fatalf("after a poke: %+v, want ceil(1/0.5) = 2", d)
	}
	h2.metrics.setInFlight(key, 1)
	h2.tick()
	h2.tick()
	if d := h2.decision(key); d.DesiredScale != 2 || d.StableConcurrency != 1 {
		t.Fatalf("one held request sampled after its poke: %+v, want stable concurrency 1, 2 instances", d)
	}
}
