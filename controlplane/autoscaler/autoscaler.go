// Package autoscaler is Skiff's Knative Pod Autoscaler (KPA): it turns the requests the proxies
// see for each revision into a desired number of instances, with Knative's stable and panic
// windows, scale rate limits, scale bounds, activation and initial scale, scale-down delay and
// scale-to-zero grace period, and decides when a revision's requests must go through extproc
// (proxy mode, Knative's activator in the path) from its excess burst capacity.
//
// The inputs are a Metrics source scraped every tick (Envoy's cluster stats, plus the requests
// extproc holds), the ready instance counts from the runtime (SetReady) and pokes from extproc
// when it holds a request for a revision at zero (Poke). The output is a Decision per revision;
// Config.OnChange says when one changed.
//
// Windows average per-second buckets (Knative's linear window average, not the weighted
// average its newer releases offer as an option): each scrape's in-flight value fills every
// second since the previous scrape, and the request counter's increase over that time, as a
// rate, fills them for rps.
package autoscaler

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// Autoscaler decides the scale of every revision it was told about. Its methods are safe for
// concurrent use; Run owns the one goroutine that ticks.
type Autoscaler struct {
	cfg     Config
	metrics Metrics
	log     *slog.Logger
	now     func() time.Time

	mu        sync.Mutex
	revs      map[string]*revision
	readyHint map[string]int // SetReady for revisions not upserted yet
}

// New returns an Autoscaler scraping m every cfg.TickInterval once Run is called. Zero numeric
// fields of cfg get Knative's defaults (see DefaultConfig); a nil logger means slog.Default().
func New(cfg Config, m Metrics, logger *slog.Logger) *Autoscaler {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	if m == nil {
		m = MetricsFunc(func(context.Context) (map[string]Sample, error) { return nil, nil })
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Autoscaler{
		cfg:       cfg,
		metrics:   m,
		log:       logger.With("component", "autoscaler"),
		now:       now,
		revs:      make(map[string]*revision),
		readyHint: make(map[string]int),
	}
}

// Upsert starts deciding for the revision key ("namespace/revision") with spec, or applies a
// changed spec to it, keeping its history. A new revision starts at its initial scale.
func (a *Autoscaler) Upsert(key string, spec Spec) {
	now := a.now()
	a.mu.Lock()
	r, ok := a.revs[key]
	changed := true
	if !ok {
		ready, known := a.readyHint[key]
		delete(a.readyHint, key)
		r = newRevision(now, &a.cfg, spec, ready, known)
		a.revs[key] = r
	} else if r.spec.Class != spec.Class {
		// Another autoscaler class starts over from the running scale.
		before := r.out
		r = newRevision(now, &a.cfg, spec, r.ready, r.ready > 0)
		a.revs[key] = r
		changed = before.differs(r.out)
	} else {
		before := r.out
		r.update(now, &a.cfg, spec)
		changed = before.differs(r.out)
	}
	dec := r.out
	a.mu.Unlock()
	if changed {
		a.changed(key, dec)
	}
}

// Delete forgets the revision key.
func (a *Autoscaler) Delete(key string) {
	a.mu.Lock()
	delete(a.revs, key)
	delete(a.readyHint, key)
	a.mu.Unlock()
}

// SetReady records how many instances of the revision are ready now, from the runtime, and
// reconciles its scale (as a pod becoming ready triggers Knative's KPA reconciler). It may
// come before Upsert (after a control-plane restart): the count is kept for it, so the
// revision starts from the running scale instead of the initial scale.
func (a *Autoscaler) SetReady(key string, ready int) {
	ready = max(ready, 0)
	now := a.now()
	a.mu.Lock()
	r, ok := a.revs[key]
	if !ok {
		a.readyHint[key] = ready
		a.mu.Unlock()
		return
	}
	before := r.out
	r.ready = ready
	r.reconcile(now, &a.cfg)
	dec := r.out
	a.mu.Unlock()
	if before.differs(dec) {
		a.changed(key, dec)
	}
}

// Poke tells the autoscaler that extproc holds a request for the revision. While the decider
// wants zero it decides at once, without waiting for the next tick, as Knative's activator
// pokes its autoscaler; the held requests themselves reach the decider as demand through the
// Metrics source (the activator's held count added to the proxies').
func (a *Autoscaler) Poke(key string) {
	now := a.now()
	a.mu.Lock()
	r, ok := a.revs[key]
	if !ok {
		a.mu.Unlock()
		a.log.Debug("poke for unknown revision", "revision", key)
		return
	}
	before := r.out
	r.poke(now, &a.cfg)
	dec := r.out
	a.mu.Unlock()
	if before.differs(dec) {
		a.changed(key, dec)
	}
}

// Decision returns the revision's current decision; false if the key is unknown.
func (a *Autoscaler) Decision(key string) (Decision, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.revs[key]
	if !ok {
		return Decision{}, false
	}
	return r.out, true
}

// Run ticks every TickInterval until ctx is done, then returns nil.
func (a *Autoscaler) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := a.Tick(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("autoscaler tick: keeping previous decisions", "err", err)
			}
		}
	}
}

// Tick scrapes the metrics once (bounded by ScrapeTimeout) and decides for every revision at
// the clock's current time, then calls OnChange for each changed decision. Run calls it every
// TickInterval; tests and benchmarks call it directly. When the scrape fails nothing is
// recorded or decided, and the error says why.
func (a *Autoscaler) Tick(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, a.cfg.ScrapeTimeout)
	defer cancel()
	samples, err := a.metrics.Scrape(sctx)
	if err != nil {
		return fmt.Errorf("scrape metrics: %w", err)
	}
	var usage map[string]map[string]runtime.InstanceUsage
	if a.cfg.Resources != nil && a.hasHPA() {
		if usage, err = a.cfg.Resources(sctx); err != nil {
			return fmt.Errorf("measure instances' resources: %w", err)
		}
	}
	now := a.now()

	type change struct {
		key string
		dec Decision
	}
	var changes []change
	a.mu.Lock()
	for key, r := range a.revs {
		before := r.out
		s, present := samples[key]
		r.tick(now, &a.cfg, s, present, usage[key])
		if before.differs(r.out) {
			changes = append(changes, change{key, r.out})
		}
	}
	a.mu.Unlock()

	slices.SortFunc(changes, func(x, y change) int { return cmp.Compare(x.key, y.key) })
	for _, c := range changes {
		a.changed(c.key, c.dec)
	}
	return nil
}

// hasHPA reports whether any revision is of the hpa class.
func (a *Autoscaler) hasHPA() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.revs {
		if r.hpa != nil {
			return true
		}
	}
	return false
}

// changed logs a decision change and tells the listener; never called with a.mu held.
func (a *Autoscaler) changed(key string, d Decision) {
	a.log.Info("scale decision",
		"revision", key, "desired", d.DesiredScale, "ready", d.ActualScale,
		"panic", d.Panic, "proxy", d.ProxyMode, "excessBurstCapacity", d.ExcessBurstCapacity,
		"stableConcurrency", d.StableConcurrency, "panicConcurrency", d.PanicConcurrency,
		"stableRPS", d.StableRPS, "panicRPS", d.PanicRPS)
	if a.cfg.OnChange != nil {
		a.cfg.OnChange(key)
	}
}
