package autoscaler

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeMetrics serves whatever samples the test set.
type fakeMetrics struct {
	mu      sync.Mutex
	samples map[string]Sample
	err     error
}

func newFakeMetrics() *fakeMetrics { return &fakeMetrics{samples: make(map[string]Sample)} }

func (f *fakeMetrics) Scrape(context.Context) (map[string]Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return maps.Clone(f.samples), nil
}

func (f *fakeMetrics) setInFlight(key string, v float64) {
	f.mu.Lock()
	s := f.samples[key]
	s.InFlight = v
	f.samples[key] = s
	f.mu.Unlock()
}

func (f *fakeMetrics) addRequests(key string, n uint64) {
	f.mu.Lock()
	s := f.samples[key]
	s.RequestsTotal += n
	f.samples[key] = s
	f.mu.Unlock()
}

func (f *fakeMetrics) setTotal(key string, n uint64) {
	f.mu.Lock()
	s := f.samples[key]
	s.RequestsTotal = n
	f.samples[key] = s
	f.mu.Unlock()
}

// harness drives one Autoscaler with a fake clock and fake metrics.
type harness struct {
	t       testing.TB
	clock   *fakeClock
	metrics *fakeMetrics
	cfg     Config
	as      *Autoscaler

	mu      sync.Mutex
	changes []string
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t testing.TB, cfg Config) *harness {
	h := &harness{t: t, clock: newFakeClock(), metrics: newFakeMetrics()}
	cfg.Now = h.clock.Now
	cfg.OnChange = func(key string) {
		h.mu.Lock()
		h.changes = append(h.changes, key)
		h.mu.Unlock()
	}
	h.cfg = cfg
	h.as = New(cfg, h.metrics, discardLogger())
	return h
}

func (h *harness) takeChanges() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.changes
	h.changes = nil
	return c
}

// upsert resolves annotations into a Spec (which must be valid) and upserts it.
func (h *harness) upsert(key string, anns map[string]string, cc int64) Spec {
	h.t.Helper()
	spec, errs := SpecFor(anns, cc, h.cfg)
	if len(errs) > 0 {
		h.t.Fatalf("SpecFor(%v): %v", anns, errs.ToAggregate())
	}
	h.as.Upsert(key, spec)
	return spec
}

// tick advances the clock by one tick interval and ticks.
func (h *harness) tick() {
	h.t.Helper()
	h.clock.Advance(h.as.cfg.TickInterval)
	if err := h.as.Tick(context.Background()); err != nil {
		h.t.Fatalf("Tick: %v", err)
	}
}

func (h *harness) decision(key string) Decision {
	h.t.Helper()
	d, ok := h.as.Decision(key)
	if !ok {
		h.t.Fatalf("no decision for %s", key)
	}
	return d
}

// converge makes the runtime report the desired scale as ready (an instant runtime).
func (h *harness) converge(key string) {
	h.as.SetReady(key, h.decision(key).DesiredScale)
}

// runFor ticks for d; with follow the runtime converges after every tick. each (if not nil)
// sees every decision.
func (h *harness) runFor(key string, d time.Duration, follow bool, each func(Decision)) {
	h.t.Helper()
	for end := h.clock.Now().Add(d); h.clock.Now().Before(end); {
		h.tick()
		if each != nil {
			each(h.decision(key))
		}
		if follow {
			h.converge(key)
		}
	}
}
