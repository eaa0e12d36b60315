package autoscaler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// fakeInstances is a ResourceUsage whose instances burn a set number of cores each.
type fakeInstances struct {
	mu      sync.Mutex
	clock   *fakeClock
	cores   float64 // per instance
	request float64
	memory  float64
	n       int
	cpu     map[string]float64 // accumulated CPU seconds per instance
	last    time.Time
}

func (f *fakeInstances) usage(context.Context) (map[string]map[string]runtime.InstanceUsage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	el := now.Sub(f.last).Seconds()
	if f.last.IsZero() {
		el = 0
	}
	f.last = now
	out := map[string]runtime.InstanceUsage{}
	for i := range f.n {
		id := fmt.Sprint(i)
		f.cpu[id] += f.cores * el
		out[id] = runtime.InstanceUsage{CPUSeconds: f.cpu[id], CPURequest: f.request, MemoryBytes: f.memory}
	}
	return map[string]map[string]runtime.InstanceUsage{key: out}, nil
}

func (f *fakeInstances) set(n int, cores float64) {
	f.mu.Lock()
	f.n, f.cores = n, cores
	f.mu.Unlock()
}

// hpaHarness drives an hpa-class revision whose instances follow the decision.
func hpaHarness(t *testing.T, anns map[string]string) (*harness, *fakeInstances) {
	t.Helper()
	cfg := DefaultConfig()
	inst := &fakeInstances{cpu: map[string]float64{}}
	cfg.Resources = inst.usage
	h := newHarness(t, cfg)
	inst.clock = h.clock
	a := map[string]string{ClassAnnotationKey: HPA}
	for k, v := range anns {
		a[k] = v
	}
	h.upsert(key, a, 0)
	return h, inst
}

// TestHPAClassScalesOnCPU follows the Kubernetes HPA algorithm (replica_calculator.go
// GetResourceReplicas, horizontal.go stabilizeRecommendationWithBehaviors and the default
// scale-up policies) on the CPU of the revision's instances.
func TestHPAClassScalesOnCPU(t *testing.T) {
	t.Run("utilization above the target scales up after two samples", func(t *testing.T) {
		h, inst := hpaHarness(t, map[string]string{TargetAnnotationKey: "50"})
		inst.set(1, 1) // one instance using a whole core: 100% of its (default) one-core request
		h.as.SetReady(key, 1)
		h.tick()
		if d := h.decision(key); d.DesiredScale != 1 || d.ProxyMode {
			t.Fatalf("first sample (no rate yet): %+v, want 1 served directly", d)
		}
		h.tick()
		if d := h.decision(key); d.DesiredScale != 2 {
			t.Fatalf("100%% on target 50%%: desired %d, want ceil(1 × 100/50) = 2", d.DesiredScale)
		}
	})
	t.Run("within the 10% tolerance nothing changes", func(t *testing.T) {
		h, inst := hpaHarness(t, map[string]string{TargetAnnotationKey: "50"})
		inst.set(1, 0.54)
		h.as.SetReady(key, 1)
		for range 5 {
			h.tick()
		}
		if d := h.decision(key); d.DesiredScale != 1 {
			t.Fatalf("54%% on target 50%%: desired %d, want 1", d.DesiredScale)
		}
	})
	t.Run("default target 80%, requests.cpu, max-scale", func(t *testing.T) {
		h, inst := hpaHarness(t, map[string]string{MaxScaleAnnotationKey: "3"})
		inst.request = 0.25
		inst.set(1, 0.5) // 200% of a quarter core
		h.as.SetReady(key, 1)
		h.tick()
		h.tick()
		if d := h.decision(key); d.DesiredScale != 3 {
			t.Fatalf("200%% on 80%% capped by max-scale 3: desired %d", d.DesiredScale)
		}
	})
	t.Run("scale up at most max(4, 100%) per 15s", func(t *testing.T) {
		h, inst := hpaHarness(t, map[string]string{TargetAnnotationKey: "10"})
		inst.set(1, 2) // 2000%: 20 instances wanted
		h.as.SetReady(key, 1)
		h.tick()
		h.tick()
		if d := h.decision(key); d.DesiredScale != 5 {
			t.Fatalf("first scale up: desired %d, want 1+4 = 5", d.DesiredScale)
		}
		inst.set(5, 2)
		h.as.SetReady(key, 5)
		for range 6 { // 12s: still within the period of the first scale up
			h.tick()
		}
		if d := h.decision(key); d.DesiredScale != 5 {
			t.Fatalf("within 15s of the scale up: desired %d, want 5", d.DesiredScale)
		}
		h.tick()
		h.tick()
		if d := h.decision(key); d.DesiredScale != 10 {
			t.Fatalf("after 15s: desired %d, want 2 × 5 = 10", d.DesiredScale)
		}
	})
	t.Run("scale down waits for the 300s stabilization window", func(t *testing.T) {
		h, inst := hpaHarness(t, map[string]string{TargetAnnotationKey: "50", MinScaleAnnotationKey: "1"})
		inst.set(1, 1)
		h.as.SetReady(key, 1)
		h.tick()
		h.tick()
		inst.set(2, 0.05)
		h.as.SetReady(key, 2)
		h.runFor(key, 296*time.Second, false, func(d Decision) {
			if d.DesiredScale != 2 {
				t.Fatalf("scaled down to %d within the stabilization window", d.DesiredScale)
			}
		})
		h.runFor(key, 8*time.Second, false, nil)
		if d := h.decision(key); d.DesiredScale != 1 {
			t.Fatalf("after the window: desired %d, want 1 (min)", d.DesiredScale)
		}
	})
	t.Run("the window annotation is the stabilization window", func(t *testing.T) {
		h, inst := hpaHarness(t, map[string]string{TargetAnnotationKey: "50", WindowAnnotationKey: "10s"})
		inst.set(1, 1)
		h.as.SetReady(key, 1)
		h.tick()
		h.tick()
		// The up window: the recommendation of 2 must hold for 10s first.
		if d := h.decision(key); d.DesiredScale != 1 {
			t.Fatalf("up window 10s: desired %d at once, want 1", d.DesiredScale)
		}
		h.runFor(key, 10*time.Second, false, nil)
		if d := h.decision(key); d.DesiredScale != 2 {
			t.Fatalf("after the 10s up window: desired %d, want 2", d.DesiredScale)
		}
	})
	t.Run("memory target in MiB", func(t *testing.T) {
		h, inst := hpaHarness(t, map[string]string{MetricAnnotationKey: Memory, TargetAnnotationKey: "100"})
		inst.memory = 250 * mebibyte
		inst.set(1, 0)
		h.as.SetReady(key, 1)
		h.tick()
		if d := h.decision(key); d.DesiredScale != 3 {
			t.Fatalf("250MiB on target 100MiB: desired %d, want 3", d.DesiredScale)
		}
	})
}

// TestOtherClassesAreLeftAlone: a class outside Knative's domain belongs to an external
// autoscaler: the revision keeps its initial scale whatever the load, as Knative leaves it.
func TestOtherClassesAreLeftAlone(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.upsert(key, map[string]string{ClassAnnotationKey: "custom.example.com", InitialScaleAnnotationKey: "2"}, 0)
	h.as.SetReady(key, 2)
	h.metrics.setInFlight(key, 1000)
	h.runFor(key, 2*time.Minute, true, nil)
	if d := h.decision(key); d.DesiredScale != 2 || d.Panic || d.ProxyMode {
		t.Fatalf("external class under load: %+v, want 2, served directly", d)
	}
	h.as.Poke(key)
	if d := h.decision(key); d.DesiredScale != 2 {
		t.Fatalf("after a poke: %+v", d)
	}
	// Switching the class back to KPA hands the revision to the KPA, from its running scale.
	h.upsert(key, map[string]string{InitialScaleAnnotationKey: "2"}, 0)
	h.runFor(key, 10*time.Second, true, nil)
	if d := h.decision(key); d.DesiredScale <= 2 {
		t.Fatalf("KPA with 1000 in flight: %+v, want a scale up", d)
	}
}
