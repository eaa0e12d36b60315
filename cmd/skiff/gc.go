package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The garbage collector settings of the processes that serve requests (`skiff up`, `skiff
// gateway`). The gateway's live heap is small (~8 MB for `skiff up` with a few Services), so
// with Go's default GOGC=100 it collects every few tens of milliseconds under load, and a
// request overlapping a collection waits for it (bench/RESULTS.md, "The local gateway against
// httputil.ReverseProxy"). A higher percent trades memory for throughput; the soft memory
// limit bounds what that trade may cost.
const (
	// DefaultGCPercent is --gc-percent's default: GOGC=400.
	DefaultGCPercent = 400
	// DefaultGCMemoryLimit is --gc-memory-limit's default.
	DefaultGCMemoryLimit = "512Mi"
	// gcGuardInterval is how often the live heap is compared with the limit.
	gcGuardInterval = 5 * time.Second
)

// addGCFlags adds --gc-percent and --gc-memory-limit.
func addGCFlags(f *pflag.FlagSet) {
	f.Int("gc-percent", DefaultGCPercent, "garbage collector target percentage (GOGC) of this process; higher trades memory for request throughput. With GOGC or GOMEMLIMIT set in the environment and neither --gc-* flag given, the environment's settings apply unchanged")
	f.String("gc-memory-limit", DefaultGCMemoryLimit, "soft memory limit (Go's GOMEMLIMIT) bounding the memory --gc-percent may cost: above it the collector runs sooner, and once the live heap passes half of it the process returns to Go's defaults (GOGC=100, no limit) so a large heap is not collected continuously; 0 for no limit")
}

// gcPlan is what the process sets its garbage collector to.
type gcPlan struct {
	// keep leaves the runtime as GOGC and GOMEMLIMIT in the environment set it.
	keep bool
	// percent is the GC percent; limit the soft memory limit in bytes (0: none).
	percent int
	limit   int64
}

// planGC decides the GC settings from the flags and the environment: flags given on the
// command line win; otherwise GOGC or GOMEMLIMIT in the environment leave the runtime alone;
// otherwise the flags' defaults apply.
func planGC(f *pflag.FlagSet, getenv func(string) string) (gcPlan, error) {
	if !f.Changed("gc-percent") && !f.Changed("gc-memory-limit") && (getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "") {
		return gcPlan{keep: true}, nil
	}
	percent, err := f.GetInt("gc-percent")
	if err != nil {
		return gcPlan{}, err
	}
	if percent < 0 {
		return gcPlan{}, fmt.Errorf("--gc-percent: %d is negative: want a percentage, e.g. 100 (Go's default) or %d", percent, DefaultGCPercent)
	}
	s, err := f.GetString("gc-memory-limit")
	if err != nil {
		return gcPlan{}, err
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return gcPlan{}, fmt.Errorf("--gc-memory-limit: %q is not a quantity of bytes, e.g. 512Mi or 2Gi: %w", s, err)
	}
	limit, ok := q.AsInt64()
	if !ok || limit < 0 {
		return gcPlan{}, fmt.Errorf("--gc-memory-limit: %q is not a quantity of bytes between 0 and %d", s, int64(math.MaxInt64))
	}
	return gcPlan{percent: percent, limit: limit}, nil
}

// applyGC sets the plan on the runtime and, when it raises the percent under a limit, guards
// the limit until ctx ends: once the live heap passes half of the limit, a raised percent
// would keep the heap at the limit and the collector would run back to back, so the process
// returns to Go's defaults; once the live heap falls under a quarter of it, the plan applies
// again.
func applyGC(ctx context.Context, p gcPlan, log *slog.Logger) {
	if p.keep {
		log.Debug("garbage collector settings from the environment (GOGC, GOMEMLIMIT)")
		return
	}
	setGC(p)
	log.Debug("garbage collector", "percent", p.percent, "memory_limit", p.limit)
	if p.limit == 0 || p.percent <= 100 {
		return
	}
	go guardGC(ctx, p, log)
}

func setGC(p gcPlan) {
	debug.SetGCPercent(p.percent)
	if p.limit > 0 {
		debug.SetMemoryLimit(p.limit)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

// guardGC is applyGC's guard; it returns when ctx ends.
func guardGC(ctx context.Context, p gcPlan, log *slog.Logger) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	defaults := false
	t := time.NewTicker(gcGuardInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := int64(sample[0].Value.Uint64())
		next, changed := gcGuardStep(p, live, defaults)
		if changed {
			defaults = next
			if defaults {
				setGC(gcPlan{percent: 100})
			} else {
				setGC(p)
			}
			log.Info("garbage collector", "live_heap", live, "memory_limit", p.limit, "go_defaults", defaults)
		}
	}
}

// gcGuardStep is one decision of the guard: whether the process runs Go's defaults given the
// live heap and whether it does now, and whether that changed.
func gcGuardStep(p gcPlan, live int64, defaults bool) (bool, bool) {
	switch {
	case !defaults && live > p.limit/2:
		return true, true
	case defaults && live < p.limit/4:
		return false, true
	}
	return defaults, false
}
