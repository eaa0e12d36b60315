package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const key = "default/hello-00001"

func TestPokeFromZero(t *testing.T) {
	for _, tc := range []struct {
		name string
		anns map[string]string
		want int
	}{
		{"default activation", nil, 1},
		{"activation-scale 3", map[string]string{ActivationScaleAnnotationKey: "3"}, 3},
		{"activation-scale 2 under max-scale 5", map[string]string{ActivationScaleAnnotationKey: "2", MaxScaleAnnotationKey: "5"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.AllowZeroInitialScale = true
			h := newHarness(t, cfg)
			anns := map[string]string{InitialScaleAnnotationKey: "0"}
			for k, v := range tc.anns {
				anns[k] = v
			}
			h.upsert(key, anns, 0)
			if d := h.decision(key); d.DesiredScale != 0 || !d.ProxyMode {
				t.Fatalf("created at zero: %+v, want desired 0 in proxy mode", d)
			}
			h.runFor(key, 10*time.Second, true, nil) // idle ticks keep it at zero
			if d := h.decision(key); d.DesiredScale != 0 {
				t.Fatalf("idle at zero: desired %d, want 0", d.DesiredScale)
			}
			h.takeChanges()

			h.as.Poke(key) // no tick: the poke acts at once
			d := h.decision(key)
			if d.DesiredScale != tc.want || !d.ProxyMode {
				t.Fatalf("after poke: %+v, want desired %d in proxy mode (nothing ready yet)", d, tc.want)
			}
			if got := h.takeChanges(); len(got) != 1 || got[0] != key {
				t.Fatalf("OnChange calls after poke = %v, want [%s]", got, key)
			}
			// The next ticks keep it up: the held request is demand in the stable window.
			h.runFor(key, 10*time.Second, true, nil)
			if d := h.decision(key); d.DesiredScale < tc.want {
				t.Fatalf("after poke and ticks: desired %d, want >= %d", d.DesiredScale, tc.want)
			}
		})
	}
}

func TestSteadyConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name        string
		anns        map[string]string
		cc          int64
		concurrency float64
		want        int
	}{
		// Knative: the target annotation is raw; 70% utilization makes it 7 per instance.
		{"target 10 default utilization C=50", map[string]string{TargetAnnotationKey: "10"}, 0, 50, 8},
		{"target 10 default utilization C=7", map[string]string{TargetAnnotationKey: "10"}, 0, 7, 1},
		{"target 10 default utilization C=8", map[string]string{TargetAnnotationKey: "10"}, 0, 8, 2},
		{"containerConcurrency 10 is the target", nil, 10, 35, 5},
		{"default target 100 C=150", nil, 0, 150, 3},
		{"target 10 utilization 100 C=50", map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0, 50, 5},
		{"target 10 utilization 100 C=1", map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0, 1, 1},
		{"target 10 utilization 100 C=95", map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0, 95, 10},
		{"target 10 utilization 100 C=200", map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0, 200, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig())
			spec := h.upsert(key, tc.anns, tc.cc)
			h.converge(key)
			h.metrics.setInFlight(key, tc.concurrency)
			h.runFor(key, 3*time.Minute, true, nil)
			d := h.decision(key)
			if d.DesiredScale != tc.want {
				t.Fatalf("desired %d, want %d (target value %g): %+v", d.DesiredScale, tc.want, spec.TargetValue, d)
			}
			if want := int(math.Ceil(tc.concurrency / spec.TargetValue)); d.DesiredScale != want {
				t.Fatalf("desired %d, want ceil(C/(target×utilization)) = %d", d.DesiredScale, want)
			}
			if d.Panic {
				t.Fatalf("still panicking after three minutes of steady load: %+v", d)
			}
			if d.StableConcurrency != tc.concurrency {
				t.Fatalf("stable concurrency %g, want %g", d.StableConcurrency, tc.concurrency)
			}
			if spec.TotalValue == 10 && spec.TargetValue == 10 {
				// What the e2e asserts: C/10 within ±1.
				if diff := math.Abs(float64(d.DesiredScale) - tc.concurrency/10); diff > 1 {
					t.Fatalf("desired %d is not C/10=%g ±1", d.DesiredScale, tc.concurrency/10)
				}
			}
		})
	}
}

func TestPanic(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.upsert(key, map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0)
	h.converge(key)
	h.metrics.setInFlight(key, 10)
	h.runFor(key, 2*time.Minute, true, nil)
	if d := h.decision(key); d.DesiredScale != 1 || d.Panic {
		t.Fatalf("steady C=10: %+v, want 1 instance, no panic", d)
	}

	// 10× burst: panic at the first tick and scale up at once.
	h.metrics.setInFlight(key, 100)
	h.tick()
	burst := h.clock.Now()
	d := h.decision(key)
	if !d.Panic || d.DesiredScale <= 1 {
		t.Fatalf("first tick of the burst: %+v, want panic and a scale up", d)
	}
	h.converge(key)
	h.runFor(key, 6*time.Second, true, nil) // one panic window
	if d := h.decision(key); d.DesiredScale != 10 || !d.Panic {
		t.Fatalf("after a panic window of C=100: %+v, want 10 in panic", d)
	}

	// Load drops: no scale down while panicking; panic ends after a stable window without the
	// panic condition.
	h.metrics.setInFlight(key, 10)
	var exited time.Time
	h.runFor(key, 3*time.Minute, true, func(d Decision) {
		if d.Panic && d.DesiredScale < 10 {
			t.Fatalf("scaled down to %d while panicking", d.DesiredScale)
		}
		if !d.Panic && exited.IsZero() {
			exited = h.clock.Now()
		}
	})
	if exited.IsZero() {
		t.Fatal("never left panic mode")
	}
	// The condition held for the first few ticks of the burst (until 10 instances were ready).
	if held := exited.Sub(burst); held < 60*time.Second || held > 72*time.Second {
		t.Fatalf("left panic %v after the burst began, want one stable window (60s) after the panic condition last held", held)
	}
	if d := h.decision(key); d.DesiredScale != 1 || d.Panic {
		t.Fatalf("after the burst: %+v, want back to 1", d)
	}
}

func TestMaxScaleDownRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		steps []int
	}{
		{"default rate 2 halves at most per tick", 2, []int{16, 8, 4, 2, 1}},
		{"rate 4", 4, []int{16, 4, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxScaleDownRate = tc.rate
			h := newHarness(t, cfg)
			h.upsert(key, map[string]string{
				TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100", WindowAnnotationKey: "6s",
			}, 0)
			h.converge(key)
			h.metrics.setInFlight(key, 160)
			h.runFor(key, 2*time.Minute, true, nil)
			if d := h.decision(key); d.DesiredScale != 16 || d.Panic {
				t.Fatalf("C=160: %+v, want 16 out of panic", d)
			}
			// Demand vanishes; the next scrape comes after a whole stable window, so the stable
			// average is 0 at once and only the rate limit holds the scale.
			h.metrics.setInFlight(key, 0)
			h.clock.Advance(8 * time.Second)
			steps := []int{16}
			h.runFor(key, 20*time.Second, true, func(d Decision) {
				if d.DesiredScale != steps[len(steps)-1] && d.DesiredScale > 0 {
					steps = append(steps, d.DesiredScale)
				}
			})
			if fmt.Sprint(steps) != fmt.Sprint(tc.steps) {
				t.Fatalf("scale-down steps %v, want %v", steps, tc.steps)
			}
			h.runFor(key, time.Minute, true, nil)
			if d := h.decision(key); d.DesiredScale != 0 {
				t.Fatalf("idle: desired %d, want 0 after the grace period", d.DesiredScale)
			}
		})
	}
}

func TestScaleToZero(t *testing.T) {
	for _, tc := range []struct {
		name     string
		enable   bool
		grace    time.Duration
		anns     map[string]string
		wantZero bool
	}{
		{"enabled grace 30s", true, 30 * time.Second, nil, true},
		{"enabled grace 10s", true, 10 * time.Second, nil, true},
		{"disabled", false, 30 * time.Second, nil, false},
		{"min-scale 1", true, 30 * time.Second, map[string]string{MinScaleAnnotationKey: "1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.EnableScaleToZero = tc.enable
			cfg.ScaleToZeroGracePeriod = tc.grace
			h := newHarness(t, cfg)
			// target-burst-capacity 0: proxy mode only at zero or while going there.
			anns := map[string]string{TargetBurstCapacityAnnotationKey: "0"}
			for k, v := range tc.anns {
				anns[k] = v
			}
			h.upsert(key, anns, 0)
			h.converge(key)
			h.metrics.setInFlight(key, 5)
			h.runFor(key, 90*time.Second, true, nil)
			if d := h.decision(key); d.ProxyMode {
				t.Fatalf("warm with target-burst-capacity 0: %+v, want serve mode", d)
			}
			h.metrics.setInFlight(key, 0)
			idle := h.clock.Now()

			var pendingAt, zeroAt time.Time
			h.runFor(key, 5*time.Minute, true, func(d Decision) {
				if d.DesiredScale == 1 && d.ProxyMode && pendingAt.IsZero() && zeroAt.IsZero() {
					pendingAt = h.clock.Now()
				}
				if d.DesiredScale == 0 && zeroAt.IsZero() {
					zeroAt = h.clock.Now()
					if !d.ProxyMode {
						t.Fatalf("at zero but not in proxy mode: %+v", d)
					}
				}
			})
			if !tc.wantZero {
				if !zeroAt.IsZero() {
					t.Fatalf("scaled to zero at +%v, want never", zeroAt.Sub(idle))
				}
				if d := h.decision(key); d.DesiredScale != 1 {
					t.Fatalf("idle: desired %d, want 1", d.DesiredScale)
				}
				return
			}
			if zeroAt.IsZero() {
				t.Fatal("never scaled to zero")
			}
			// The stable window must be empty of traffic, then the grace period must pass.
			if got := zeroAt.Sub(idle); got < 60*time.Second+tc.grace {
				t.Fatalf("scaled to zero %v after traffic stopped, want >= stable window + grace = %v", got, 60*time.Second+tc.grace)
			}
			if got := zeroAt.Sub(pendingAt); got < tc.grace || got > tc.grace+cfg.TickInterval {
				t.Fatalf("held the last instance in proxy mode for %v, want the grace period %v", got, tc.grace)
			}
		})
	}
}

func TestScaleBounds(t *testing.T) {
	util100 := func(m map[string]string) map[string]string {
		m[TargetAnnotationKey] = "10"
		m[TargetUtilizationPercentageAnnotationKey] = "100"
		return m
	}
	for _, tc := range []struct {
		name        string
		anns        map[string]string
		concurrency float64
		want        int
	}{
		{"max-scale caps", util100(map[string]string{MaxScaleAnnotationKey: "3"}), 100, 3},
		{"min-scale floors an idle revision", util100(map[string]string{MinScaleAnnotationKey: "2"}), 0, 2},
		{"min-scale below demand", util100(map[string]string{MinScaleAnnotationKey: "2"}), 50, 5},
		{"legacy maxScale spelling", util100(map[string]string{"autoscaling.knative.dev/maxScale": "4"}), 100, 4},
		{"activation-scale is the least non-zero scale", util100(map[string]string{ActivationScaleAnnotationKey: "3"}), 5, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig())
			h.upsert(key, tc.anns, 0)
			h.converge(key)
			h.metrics.setInFlight(key, tc.concurrency)
			h.runFor(key, 5*time.Minute, true, nil)
			if d := h.decision(key); d.DesiredScale != tc.want {
				t.Fatalf("desired %d, want %d: %+v", d.DesiredScale, tc.want, d)
			}
		})
	}
}

// TestRestartKeepsRunningScale: after a control-plane restart the runtime reports the
// running instances before the revision is upserted; like Knative's autoscaler restarting
// (autoscaler.go newAutoscaler: "We always start in the panic mode, if the deployment is
// scaled up over 1 pod"), the revision keeps that scale until it has data.
func TestRestartKeepsRunningScale(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.as.SetReady(key, 5) // the runtime reports before the revision is upserted
	h.upsert(key, nil, 0)
	if d := h.decision(key); d.DesiredScale != 5 || !d.Panic {
		t.Fatalf("after restart: %+v, want 5 held in panic mode", d)
	}
	h.tick() // no demand: panic holds the five instances
	if d := h.decision(key); d.DesiredScale != 5 || !d.Panic {
		t.Fatalf("first tick after restart: %+v, want 5 held in panic mode", d)
	}
}

func TestRPS(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	spec := h.upsert(key, map[string]string{
		MetricAnnotationKey: RPS, TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100",
	}, 0)
	if spec.TargetValue != 10 {
		t.Fatalf("target value %g, want 10", spec.TargetValue)
	}
	h.converge(key)
	// 50 requests per second, short requests (nothing in flight at scrape time).
	for range 60 {
		h.metrics.addRequests(key, 100) // 2s of 50 rps
		h.tick()
		h.converge(key)
	}
	d := h.decision(key)
	if d.DesiredScale != 5 || math.Abs(d.StableRPS-50) > 1e-9 {
		t.Fatalf("50 rps on target 10: %+v, want 5 instances, stable rps 50", d)
	}
	// A proxy restart drops the counter: never a negative rate.
	h.metrics.setTotal(key, 10)
	h.tick()
	if d := h.decision(key); d.StableRPS < 0 || d.PanicRPS < 0 || d.DesiredScale != 5 {
		t.Fatalf("after a counter reset: %+v, want no negative rate and no scale change", d)
	}
	for range 5 {
		h.metrics.addRequests(key, 100)
		h.tick()
		h.converge(key)
	}
	if d := h.decision(key); d.PanicRPS != 50 {
		t.Fatalf("after the reset: panic rps %g, want 50", d.PanicRPS)
	}
}

func TestProxyModeAndBurstCapacity(t *testing.T) {
	for _, tc := range []struct {
		name        string
		anns        map[string]string
		ready       int
		concurrency float64
		wantEBC     float64
		wantProxy   bool
	}{
		// Defaults: target 100 per instance, TBC 211.
		{"default TBC, one instance", nil, 1, 0, 100 - 211, true},
		{"default TBC, three instances idle", map[string]string{MinScaleAnnotationKey: "3"}, 3, 0, 300 - 211, false},
		{"default TBC, three instances busy", map[string]string{MinScaleAnnotationKey: "3"}, 3, 150, 300 - 211 - 150, true},
		{"TBC -1 always proxies", map[string]string{TargetBurstCapacityAnnotationKey: "-1", MinScaleAnnotationKey: "3"}, 3, 0, -1, true},
		{"TBC 0 serves when warm", map[string]string{TargetBurstCapacityAnnotationKey: "0", MinScaleAnnotationKey: "1"}, 1, 80, 0, false},
		{"TBC 0 proxies at zero", map[string]string{TargetBurstCapacityAnnotationKey: "0", MinScaleAnnotationKey: "1"}, 0, 0, 0, true},
		{"TBC 10 target 10", map[string]string{TargetBurstCapacityAnnotationKey: "10", TargetAnnotationKey: "10", MinScaleAnnotationKey: "4"}, 4, 12, 40 - 10 - 12, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig())
			h.upsert(key, tc.anns, 0)
			h.as.SetReady(key, tc.ready)
			h.metrics.setInFlight(key, tc.concurrency)
			for range 5 {
				h.tick()
			}
			h.as.SetReady(key, tc.ready)
			d := h.decision(key)
			if d.ExcessBurstCapacity != tc.wantEBC || d.ProxyMode != tc.wantProxy {
				t.Fatalf("EBC %g proxy %v, want %g %v: %+v", d.ExcessBurstCapacity, d.ProxyMode, tc.wantEBC, tc.wantProxy, d)
			}
		})
	}

	t.Run("serve mode once ready and wanted, with notification", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.upsert(key, map[string]string{TargetBurstCapacityAnnotationKey: "0"}, 0)
		h.tick()
		h.takeChanges()
		if d := h.decision(key); !d.ProxyMode {
			t.Fatalf("nothing ready: %+v, want proxy mode", d)
		}
		// Knative leaves the activator in the path until the decider, with data from the
		// ready instance, wants it: the next tick.
		h.as.SetReady(key, 1)
		if d := h.decision(key); !d.ProxyMode || d.ActualScale != 1 {
			t.Fatalf("one ready before any decision: %+v, want proxy mode still", d)
		}
		h.tick()
		if d := h.decision(key); d.ProxyMode {
			t.Fatalf("one ready and wanted: %+v, want serve mode", d)
		}
		if got := h.takeChanges(); len(got) != 1 {
			t.Fatalf("OnChange calls %v, want one", got)
		}
		// Losing the last ready instance puts the activator back at once.
		h.as.SetReady(key, 0)
		if d := h.decision(key); !d.ProxyMode {
			t.Fatalf("none ready: %+v, want proxy mode", d)
		}
	})
}

func TestScaleDownDelay(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.upsert(key, map[string]string{
		TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100",
		ScaleDownDelayAnnotationKey: "90s", WindowAnnotationKey: "6s",
	}, 0)
	h.converge(key)
	h.metrics.setInFlight(key, 40)
	h.runFor(key, time.Minute, true, nil)
	if d := h.decision(key); d.DesiredScale != 4 {
		t.Fatalf("C=40: desired %d, want 4", d.DesiredScale)
	}
	h.metrics.setInFlight(key, 10)
	h.runFor(key, 88*time.Second, true, func(d Decision) { // the last 4 was decided just before the drop
		if d.DesiredScale != 4 {
			t.Fatalf("scaled to %d within the 90s scale-down delay", d.DesiredScale)
		}
	})
	h.runFor(key, 10*time.Second, true, nil)
	if d := h.decision(key); d.DesiredScale >= 4 {
		t.Fatalf("after the delay: desired %d, want a scale down", d.DesiredScale)
	}
	// Each rate-limited step down is itself held for the delay, as in Knative.
	h.runFor(key, 3*time.Minute, true, nil)
	if d := h.decision(key); d.DesiredScale != 1 {
		t.Fatalf("long after the drop: desired %d, want 1", d.DesiredScale)
	}
}

func TestUpsertChangesBounds(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.upsert(key, map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0)
	if got := h.takeChanges(); len(got) != 1 {
		t.Fatalf("OnChange on create: %v, want one call", got)
	}
	h.converge(key)
	h.metrics.setInFlight(key, 80)
	h.runFor(key, 2*time.Minute, true, nil)
	h.takeChanges()
	h.upsert(key, map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100", MaxScaleAnnotationKey: "2", WindowAnnotationKey: "30s"}, 0)
	if d := h.decision(key); d.DesiredScale != 2 {
		t.Fatalf("after max-scale 2: desired %d, want 2 at once", d.DesiredScale)
	}
	if got := h.takeChanges(); len(got) != 1 {
		t.Fatalf("OnChange after the spec change: %v, want one call", got)
	}
	h.runFor(key, 10*time.Second, true, nil)
	if d := h.decision(key); d.DesiredScale != 2 || d.StableConcurrency != 80 {
		t.Fatalf("after resize: %+v, want 2 with the history kept", d)
	}
	h.as.Delete(key)
	if _, ok := h.as.Decision(key); ok {
		t.Fatal("decision after Delete")
	}
}

func TestScrapeFailureKeepsDecisions(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.upsert(key, map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0)
	h.converge(key)
	h.metrics.setInFlight(key, 30)
	h.runFor(key, 2*time.Minute, true, nil)
	before := h.decision(key)
	h.metrics.mu.Lock()
	h.metrics.err = errors.New("connection refused")
	h.metrics.mu.Unlock()
	h.clock.Advance(2 * time.Second)
	if err := h.as.Tick(context.Background()); err == nil || !strings.Contains(err.Error(), "scrape metrics: connection refused") {
		t.Fatalf("Tick error = %v, want the scrape's", err)
	}
	if after := h.decision(key); after != before {
		t.Fatalf("decision changed on a failed scrape: %+v → %+v", before, after)
	}
}

func TestRun(t *testing.T) {
	var calls atomic.Int32
	cfg := DefaultConfig()
	cfg.TickInterval = 5 * time.Millisecond
	cfg.OnChange = func(string) { calls.Add(1) }
	m := newFakeMetrics()
	m.setInFlight(key, 500)
	as := New(cfg, m, discardLogger())
	spec, errs := SpecFor(nil, 0, cfg)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	as.Upsert(key, spec)
	as.SetReady(key, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- as.Run(ctx) }()
	deadline := time.After(5 * time.Second)
	for {
		if d, _ := as.Decision(key); d.DesiredScale > 1 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("Run never scaled up")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if calls.Load() < 2 {
		t.Fatalf("OnChange called %d times, want >= 2", calls.Load())
	}
}

// TestSetConfigScaleToZero: an edit of config-autoscaler reaches revisions already decided
// for, as Knative's autoscaler reads its config on every decision: with
// enable-scale-to-zero turned off, an idle revision at zero comes back to one instance; on
// again, it returns to zero after the grace period.
func TestSetConfigScaleToZero(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.upsert(key, map[string]string{TargetBurstCapacityAnnotationKey: "0"}, 0)
	h.converge(key)
	h.metrics.setInFlight(key, 0)
	h.runFor(key, 5*time.Minute, true, nil)
	if d := h.decision(key); d.DesiredScale != 0 {
		t.Fatalf("idle 5 minutes with scale to zero on: desired %d, want 0", d.DesiredScale)
	}

	off := cfg
	off.EnableScaleToZero = false
	h.as.SetConfig(off)
	h.runFor(key, 10*time.Second, true, nil)
	if d := h.decision(key); d.DesiredScale != 1 {
		t.Fatalf("enable-scale-to-zero turned off: desired %d, want 1", d.DesiredScale)
	}

	h.as.SetConfig(cfg)
	var zeroAt time.Time
	start := h.clock.Now()
	h.runFor(key, 5*time.Minute, true, func(d Decision) {
		if d.DesiredScale == 0 && zeroAt.IsZero() {
			zeroAt = h.clock.Now()
		}
	})
	if zeroAt.IsZero() {
		t.Fatal("enable-scale-to-zero back on: never scaled to zero again")
	}
	if got := zeroAt.Sub(start); got < cfg.ScaleToZeroGracePeriod {
		t.Errorf("back to zero %v after scale to zero was enabled again, want at least the grace period %v", got, cfg.ScaleToZeroGracePeriod)
	}
}
