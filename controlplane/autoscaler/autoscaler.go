// Package autoscaler is Skiff's Knative Pod Autoscaler (KPA): it turns the requests the proxies
// see for each revision into the number of instances Knative Serving would run, tick by tick,
// and decides when a revision's requests must go through extproc (Knative's activator in the
// path, its ServerlessService in proxy mode).
//
// It is a port of three parts of Knative Serving, each in its own file:
//   - buckets.go: the metric windows (pkg/autoscaler/aggregation): one-second buckets whose
//     sources add up, averaged from the first write to the last, each window (stable, panic)
//     restarting after a gap as long as itself; linear or weighted-exponential;
//   - decider.go: the decider (pkg/autoscaler/scaling/autoscaler.go Scale): desired =
//     ceil(observed / target) on the stable window, panic mode on the panic window, the scale
//     rate limits, activation scale, the scale-down delay, excess burst capacity;
//   - kpa.go: the KPA reconciler (pkg/reconciler/autoscaling/kpa: scaler.go scale and
//     handleScaleToZero, kpa.go computeActiveCondition and the ServerlessService mode): min,
//     max and initial scale, the Active condition, scale to zero once active a stable window
//     and then inactive with the activator in the path for the grace period.
//
// revision.go ties them together the way Knative's metric collector and multiscaler do: a stat
// per second is recorded while an instance is ready (Knative's scraper) or requests are held
// (the activator's report, plus one empty report after), nothing otherwise; the decider runs
// every tick and on a poke while it wants zero; the reconciler runs after each decision and
// when the ready count changes. hpa.go scales the hpa class on CPU in `skiff up`.
//
// The inputs are a Metrics source scraped every tick (the proxies' in-flight gauge and
// request counter, plus the requests extproc holds, added as Knative's collector adds the
// activator's stat), the ready instance counts from the runtime (SetReady) and pokes from
// extproc when it holds a request (Poke). The output is a Decision per revision;
// Config.OnChange says when one changed.
//
// Where Skiff differs, on purpose: Knative's collector records a stat every second, each the
// average of the requests in flight over that second (queue-proxy's and the activator's);
// Skiff samples the proxies' in-flight gauge once per tick, and a sample stands for every
// second since the previous tick (several samples within one second average). The request
// counter's increase over the tick, as a rate, does the same for rps. README.md's autoscaling
// section lists every difference from Knative.
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
	spec = spec.withDefaults(&a.cfg)
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

// SetConfig puts cluster-wide settings in force from the next decision on (a config-autoscaler
// edit, which Knative's autoscaler also follows): scale to zero, its grace and retention
// periods, the progress deadline and the scale rates. The engine's own fields (TickInterval,
// ScrapeTimeout and the hooks) keep what New was given. A revision's spec, which the other
// fields shape, changes with its next Upsert.
func (a *Autoscaler) SetConfig(cfg Config) {
	cfg = cfg.withDefaults()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfg.EnableScaleToZero = cfg.EnableScaleToZero
	a.cfg.ScaleToZeroGracePeriod = cfg.ScaleToZeroGracePeriod
	a.cfg.ScaleToZeroPodRetentionPeriod = cfg.ScaleToZeroPodRetentionPeriod
	a.cfg.ProgressDeadline = cfg.ProgressDeadline
	a.cfg.MaxScaleUpRate = cfg.MaxScaleUpRate
	a.cfg.MaxScaleDownRate = cfg.MaxScaleDownRate
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
