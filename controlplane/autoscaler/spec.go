package autoscaler

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Knative's autoscaling annotations, read from a Revision (or its template) exactly as Knative
// names them. The older camelCase spellings (minScale, maxScale, ...) are accepted too when the
// kebab-case one is absent, as Knative does.
const (
	// ClassAnnotationKey selects the autoscaler; Skiff implements only KPA.
	ClassAnnotationKey = "autoscaling.knative.dev/class"
	// MetricAnnotationKey selects the scaling metric: Concurrency (default) or RPS.
	MetricAnnotationKey = "autoscaling.knative.dev/metric"
	// TargetAnnotationKey is the per-instance target of the metric, before utilization applies.
	TargetAnnotationKey = "autoscaling.knative.dev/target"
	// TargetUtilizationPercentageAnnotationKey is the percentage of the target to aim for (1..100).
	TargetUtilizationPercentageAnnotationKey = "autoscaling.knative.dev/target-utilization-percentage"
	// MinScaleAnnotationKey is the lowest number of instances (0: may scale to zero).
	MinScaleAnnotationKey = "autoscaling.knative.dev/min-scale"
	// MaxScaleAnnotationKey is the highest number of instances (0: unbounded).
	MaxScaleAnnotationKey = "autoscaling.knative.dev/max-scale"
	// InitialScaleAnnotationKey is the number of instances a new revision starts with.
	InitialScaleAnnotationKey = "autoscaling.knative.dev/initial-scale"
	// ActivationScaleAnnotationKey is the lowest non-zero scale: the scale when leaving zero.
	ActivationScaleAnnotationKey = "autoscaling.knative.dev/activation-scale"
	// ScaleDownDelayAnnotationKey holds scale-down decisions for this long (0s..1h, whole seconds).
	ScaleDownDelayAnnotationKey = "autoscaling.knative.dev/scale-down-delay"
	// WindowAnnotationKey is the stable window (6s..1h, whole seconds).
	WindowAnnotationKey = "autoscaling.knative.dev/window"
	// PanicWindowPercentageAnnotationKey is the panic window as a percentage of the stable window.
	PanicWindowPercentageAnnotationKey = "autoscaling.knative.dev/panic-window-percentage"
	// PanicThresholdPercentageAnnotationKey is the panic-window demand, as a percentage of current
	// capacity, at which the autoscaler panics.
	PanicThresholdPercentageAnnotationKey = "autoscaling.knative.dev/panic-threshold-percentage"
	// TargetBurstCapacityAnnotationKey is the spare capacity (in metric units) the revision must
	// have before the proxy stops buffering its requests; -1 means always buffer.
	TargetBurstCapacityAnnotationKey = "autoscaling.knative.dev/target-burst-capacity"
	// ScaleToZeroPodRetentionPeriodAnnotationKey is the least time the last instance stays once
	// the revision became inactive (0s..1h).
	ScaleToZeroPodRetentionPeriodAnnotationKey = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
	// MetricAggregationAlgorithmAnnotationKey selects how the windows average: linear (default)
	// or weighted-exponential.
	MetricAggregationAlgorithmAnnotationKey = "autoscaling.knative.dev/metric-aggregation-algorithm"
	// ProgressDeadlineAnnotationKey is how long a revision may take to activate before Knative
	// gives up on it (its KPA then lets it go to zero 30s later).
	ProgressDeadlineAnnotationKey = "serving.knative.dev/progress-deadline"
)

// Values of the class, metric and aggregation annotations.
const (
	// KPA is the Knative Pod Autoscaler class, the default: this package decides the scale.
	KPA = "kpa.autoscaling.knative.dev"
	// HPA is the Kubernetes HPA class: a HorizontalPodAutoscaler scales the revision in a
	// cluster; in `skiff up` this package scales it on its instances' CPU the way the HPA would.
	HPA = "hpa.autoscaling.knative.dev"
	// Concurrency scales on requests in flight per instance.
	Concurrency = "concurrency"
	// RPS scales on requests per second per instance.
	RPS = "rps"
	// CPU is the HPA class's default metric: CPU utilization, a percentage of requests.cpu.
	CPU = "cpu"
	// Memory is the HPA class's memory metric: average memory use per instance, the target in MiB.
	Memory = "memory"
	// Linear averages every second of a window alike (the default aggregation algorithm).
	Linear = "linear"
	// WeightedExponential weighs recent seconds more (Knative's weighted-exponential).
	WeightedExponential = "weighted-exponential"
	// knativeDomain is the suffix of the classes Knative reserves; a class outside it belongs
	// to an external autoscaler.
	knativeDomain = ".knative.dev"
)

// Bounds Knative puts on the annotations.
const (
	// WindowMin is the shortest stable window.
	WindowMin = 6 * time.Second
	// WindowMax is the longest stable window (and scale-down delay).
	WindowMax = time.Hour
	// TargetMin is the smallest target accepted, and the floor of target × utilization.
	TargetMin = 0.01
	// rpsTargetUtilization is Knative's utilization for the rps metric without annotation.
	rpsTargetUtilization = 0.7
)

// legacyKey returns the camelCase spelling Knative still reads for a kebab-case key, or "".
func legacyKey(key string) string {
	switch key {
	case MinScaleAnnotationKey:
		return "autoscaling.knative.dev/minScale"
	case MaxScaleAnnotationKey:
		return "autoscaling.knative.dev/maxScale"
	case InitialScaleAnnotationKey:
		return "autoscaling.knative.dev/initialScale"
	case ScaleDownDelayAnnotationKey:
		return "autoscaling.knative.dev/scaleDownDelay"
	case PanicWindowPercentageAnnotationKey:
		return "autoscaling.knative.dev/panicWindowPercentage"
	case PanicThresholdPercentageAnnotationKey:
		return "autoscaling.knative.dev/panicThresholdPercentage"
	case TargetUtilizationPercentageAnnotationKey:
		return "autoscaling.knative.dev/targetUtilizationPercentage"
	case TargetBurstCapacityAnnotationKey:
		return "autoscaling.knative.dev/targetBurstCapacity"
	case ScaleToZeroPodRetentionPeriodAnnotationKey:
		return "autoscaling.knative.dev/scaleToZeroPodRetentionPeriod"
	case MetricAggregationAlgorithmAnnotationKey:
		return "autoscaling.knative.dev/metricAggregationAlgorithm"
	}
	return ""
}

// Config is the cluster-wide autoscaler configuration (Knative's config-autoscaler ConfigMap),
// plus what the engine needs to run. Start from DefaultConfig: New fills zero numeric fields
// with Knative's defaults, but a zero bool is a real choice (EnableScaleToZero false).
type Config struct {
	// EnableScaleToZero lets idle revisions go to zero instances (enable-scale-to-zero, true).
	EnableScaleToZero bool
	// ScaleToZeroGracePeriod is how long an inactive revision keeps its last instance with the
	// activator (extproc) in its path before it goes to zero (scale-to-zero-grace-period, 30s).
	ScaleToZeroGracePeriod time.Duration
	// ScaleToZeroPodRetentionPeriod is the least time an inactive revision keeps its last
	// instance (scale-to-zero-pod-retention-period, 0s).
	ScaleToZeroPodRetentionPeriod time.Duration
	// ProgressDeadline is how long a revision may stay activating (config-deployment's
	// progress-deadline, 600s); 30s after it, a revision that wants no instance goes to zero.
	ProgressDeadline time.Duration
	// MaxScaleUpRate bounds one decision to ready × rate instances (max-scale-up-rate, 1000).
	MaxScaleUpRate float64
	// MaxScaleDownRate bounds one decision to ready / rate instances (max-scale-down-rate, 2).
	MaxScaleDownRate float64
	// TickInterval is how often Run scrapes metrics and decides (tick-interval, 2s).
	TickInterval time.Duration
	// ScrapeTimeout bounds one scrape of the Metrics (default 1s, never above TickInterval).
	ScrapeTimeout time.Duration

	// StableWindow is the default stable window (stable-window, 60s).
	StableWindow time.Duration
	// PanicWindowPercentage is the default panic window percentage (panic-window-percentage, 10).
	PanicWindowPercentage float64
	// PanicThresholdPercentage is the default panic threshold (panic-threshold-percentage, 200).
	PanicThresholdPercentage float64
	// TargetUtilizationPercentage is the default utilization of the concurrency target
	// (container-concurrency-target-percentage, 70). As in Knative, rps always aims at 70%
	// unless the revision's annotation says otherwise.
	TargetUtilizationPercentage float64
	// ContainerConcurrencyTargetDefault is the concurrency target without annotation or
	// containerConcurrency (container-concurrency-target-default, 100).
	ContainerConcurrencyTargetDefault float64
	// RPSTargetDefault is the rps target without annotation (requests-per-second-target-default, 200).
	RPSTargetDefault float64
	// TargetBurstCapacity is the default target burst capacity (target-burst-capacity, 211).
	TargetBurstCapacity float64
	// InitialScale is the default initial scale (initial-scale, 1).
	InitialScale int
	// AllowZeroInitialScale permits initial-scale 0 (allow-zero-initial-scale, false).
	AllowZeroInitialScale bool
	// MinScale is the default min-scale (min-scale, 0).
	MinScale int
	// MaxScale is the default max-scale (max-scale, 0 = unbounded).
	MaxScale int
	// MaxScaleLimit is the highest max-scale a revision may ask for (max-scale-limit, 0 = none).
	MaxScaleLimit int
	// ScaleDownDelay is the default scale-down delay (scale-down-delay, 0s).
	ScaleDownDelay time.Duration

	// OnChange is called, outside the engine's locks, with a revision key whenever its Decision's
	// DesiredScale, Panic or ProxyMode changes (and when a revision is first upserted). It runs on
	// Run's goroutine or on the goroutine calling Upsert, SetReady or Poke; it should be quick and
	// may call Decision. Nil means nobody listens.
	OnChange func(key string)
	// Now is the clock; nil means time.Now. Tests inject a fake clock and call Tick.
	Now func() time.Time
	// Resources measures the instances of hpa-class revisions, which are then scaled on their
	// CPU (or memory) as the Kubernetes HPA would scale them; nil leaves them at their
	// initial scale. `skiff up` measures its local processes.
	Resources ResourceUsage
}

// DefaultConfig returns Knative's default autoscaler configuration.
func DefaultConfig() Config {
	return Config{
		EnableScaleToZero:                 true,
		ScaleToZeroGracePeriod:            30 * time.Second,
		MaxScaleUpRate:                    1000,
		MaxScaleDownRate:                  2,
		TickInterval:                      2 * time.Second,
		ScrapeTimeout:                     time.Second,
		StableWindow:                      60 * time.Second,
		PanicWindowPercentage:             10,
		PanicThresholdPercentage:          200,
		TargetUtilizationPercentage:       70,
		ContainerConcurrencyTargetDefault: 100,
		RPSTargetDefault:                  200,
		TargetBurstCapacity:               211,
		ProgressDeadline:                  600 * time.Second,
		InitialScale:                      1,
	}
}

// withDefaults fills zero numeric fields with Knative's defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setF := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setF(&c.MaxScaleUpRate, d.MaxScaleUpRate)
	setF(&c.MaxScaleDownRate, d.MaxScaleDownRate)
	setF(&c.PanicWindowPercentage, d.PanicWindowPercentage)
	setF(&c.PanicThresholdPercentage, d.PanicThresholdPercentage)
	setF(&c.TargetUtilizationPercentage, d.TargetUtilizationPercentage)
	setF(&c.ContainerConcurrencyTargetDefault, d.ContainerConcurrencyTargetDefault)
	setF(&c.RPSTargetDefault, d.RPSTargetDefault)
	setD(&c.TickInterval, d.TickInterval)
	setD(&c.ScrapeTimeout, d.ScrapeTimeout)
	setD(&c.StableWindow, d.StableWindow)
	setD(&c.ProgressDeadline, d.ProgressDeadline)
	c.ScaleToZeroPodRetentionPeriod = max(c.ScaleToZeroPodRetentionPeriod, 0)
	if c.ScaleToZeroGracePeriod < 0 {
		c.ScaleToZeroGracePeriod = 0
	}
	c.ScrapeTimeout = min(c.ScrapeTimeout, c.TickInterval)
	if c.StableWindow < time.Second {
		c.StableWindow = time.Second
	}
	if c.InitialScale < 0 {
		c.InitialScale = 0
	}
	return c
}

// Spec is one revision's resolved autoscaling parameters (Knative's DeciderSpec plus the scale
// bounds), built by SpecFor.
type Spec struct {
	// Class is the autoscaler class: KPA (decided here), HPA, or an external autoscaler's,
	// which Skiff leaves alone.
	Class string
	// Metric is Concurrency or RPS for KPA; CPU, Memory or a custom metric name for HPA.
	Metric string
	// Target is the target annotation as written (0 when absent), which the HPA class uses:
	// a CPU utilization percentage, or MiB of memory per instance.
	Target float64
	// Aggregation is how the windows average: Linear or WeightedExponential.
	Aggregation string
	// TargetValue is what the autoscaler aims for per ready instance: target × utilization,
	// at least TargetMin. Desired scale is ceil(observed / TargetValue).
	TargetValue float64
	// TotalValue is the full per-instance capacity (the raw target), used for burst capacity.
	TotalValue float64
	// TargetBurstCapacity is the burst capacity to keep spare; -1 is unlimited (always proxy).
	TargetBurstCapacity float64
	// PanicThreshold is the panic threshold as a ratio (200% is 2.0).
	PanicThreshold float64
	// StableWindow is the averaging window for stable-mode decisions (whole seconds).
	StableWindow time.Duration
	// Window is the window annotation as written; 0 when absent. The hpa class uses it as
	// the HorizontalPodAutoscaler's stabilization windows.
	Window time.Duration
	// PanicWindow is the averaging window for panic-mode decisions (at least one second).
	PanicWindow time.Duration
	// ScaleDownDelay holds the highest desired scale of this trailing period.
	ScaleDownDelay time.Duration
	// MinScale is the lowest scale (0: may scale to zero).
	MinScale int
	// MaxScale is the highest scale (0: unbounded).
	MaxScale int
	// InitialScale is the scale of a newly created revision until its first decision.
	InitialScale int
	// ActivationScale is the lowest non-zero scale.
	ActivationScale int
	// MaxScaleUpRate and MaxScaleDownRate are copied from Config.
	MaxScaleUpRate, MaxScaleDownRate float64
	// ScaleToZeroPodRetention is the scale-to-zero-pod-retention-period annotation; negative
	// when absent (Config.ScaleToZeroPodRetentionPeriod applies).
	ScaleToZeroPodRetention time.Duration
	// ProgressDeadline is the progress-deadline annotation; 0 when absent (Config's applies).
	ProgressDeadline time.Duration
	// CPURequest is the serving container's resources.requests.cpu in cores (0: none), the
	// hpa class's 100% of CPU utilization. SpecFor leaves it 0; the reconciler sets it.
	CPURequest float64
	// Service and Configuration name what the revision belongs to, for the labels of its
	// metrics (Scales). SpecFor leaves them empty; the reconciler sets them.
	Service, Configuration string
}

// withDefaults fills what a Spec built by hand may leave out: the class (KPA), the
// aggregation (linear), the scale rates and stable window (the cluster's), a panic window of
// at least a second and at most the stable window.
func (s Spec) withDefaults(g *Config) Spec {
	if s.Class == "" {
		s.Class = KPA
	}
	if s.Aggregation == "" {
		s.Aggregation = Linear
	}
	if s.MaxScaleUpRate <= 0 {
		s.MaxScaleUpRate = g.MaxScaleUpRate
	}
	if s.MaxScaleDownRate <= 0 {
		s.MaxScaleDownRate = g.MaxScaleDownRate
	}
	if s.StableWindow < bucketSize {
		s.StableWindow = g.StableWindow
	}
	s.PanicWindow = min(max(s.PanicWindow, bucketSize), s.StableWindow)
	return s
}

// SpecFor resolves a revision's autoscaling annotations against the cluster-wide configuration,
// like Knative's annotation validation and ResolveMetricTarget. containerConcurrency is the
// revision's spec.containerConcurrency (0: unlimited). Errors name the annotation, e.g.
// `metadata.annotations[autoscaling.knative.dev/min-scale]: Invalid value: "x": ...`.
//
// Each step resolves one group of annotations into s, in order: later steps read what earlier
// ones decided (the target depends on the metric, activation-scale on max-scale).
func SpecFor(annotations map[string]string, containerConcurrency int64, g Config) (Spec, field.ErrorList) {
	g = g.withDefaults()
	p := annotationParser{anns: annotations, path: field.NewPath("metadata", "annotations")}

	s := Spec{
		Class:                   KPA,
		Metric:                  Concurrency,
		Aggregation:             Linear,
		MaxScaleUpRate:          g.MaxScaleUpRate,
		MaxScaleDownRate:        g.MaxScaleDownRate,
		ScaleToZeroPodRetention: -1,
	}
	p.classAndMetric(&s)
	p.target(&s, containerConcurrency, &g)
	p.windows(&s, &g)
	p.delays(&s, &g)
	p.scaleBounds(&s, &g)
	return s, p.errs
}

// classAndMetric resolves the class, the metric (whose default depends on the class) and the
// aggregation algorithm.
func (p *annotationParser) classAndMetric(s *Spec) {
	// Knative refuses only the classes of its own domain it does not know; any other class
	// belongs to an external autoscaler.
	classSet := false
	if k, v, ok := p.get(ClassAnnotationKey); ok {
		classSet = true
		switch {
		case v == KPA || v == HPA || !strings.HasSuffix(v, knativeDomain):
			s.Class = v
		default:
			p.errs = append(p.errs, field.NotSupported(p.path.Key(k), v, []string{KPA, HPA}))
		}
	}
	switch s.Class {
	case HPA:
		s.Metric = CPU
	case KPA:
	default:
		s.Metric = ""
	}
	if k, v, ok := p.get(MetricAnnotationKey); ok {
		switch {
		case s.Class == KPA && (v == Concurrency || v == RPS):
			s.Metric = v
		case s.Class == KPA:
			p.errs = append(p.errs, field.NotSupported(p.path.Key(k), v, []string{Concurrency, RPS}))
		case s.Class == HPA && v == "":
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, "must name the metric to scale on, such as cpu or memory"))
		default:
			s.Metric = v
		}
	}
	if k, v, ok := p.get(MetricAggregationAlgorithmAnnotationKey); ok {
		switch v {
		case WeightedExponential, "weightedExponential":
			s.Aggregation = WeightedExponential
		case Linear:
		default:
			// Knative checks the algorithm only when the class is set to KPA explicitly.
			if classSet && s.Class == KPA {
				p.errs = append(p.errs, field.NotSupported(p.path.Key(k), v, []string{Linear, WeightedExponential}))
			}
		}
	}
}

// target resolves the per-instance target, its utilization and the target burst capacity, as
// Knative's ResolveMetricTarget does, for the metric already in s.
func (p *annotationParser) target(s *Spec, containerConcurrency int64, g *Config) {
	var total float64
	if s.Metric == RPS {
		total = g.RPSTargetDefault
	} else {
		total = g.ContainerConcurrencyTargetDefault
		if containerConcurrency > 0 {
			total = float64(containerConcurrency)
		}
	}
	if t, ok := p.float(TargetAnnotationKey, TargetMin, math.Inf(1)); ok {
		s.Target = t
		total = t
		if s.Metric == Concurrency && containerConcurrency > 0 {
			// Never aim above what one instance accepts.
			total = math.Min(t, float64(containerConcurrency))
		}
	}
	// Knative's cluster setting container-concurrency-target-percentage applies to
	// concurrency only; its rps utilization is a fixed 70% (TargetUtilization is not read from
	// config-autoscaler). The fraction is taken first, then multiplied, as Knative does, so
	// that targets such as 3 × 0.7 round the same way.
	util := g.TargetUtilizationPercentage / 100
	if s.Metric == RPS {
		util = rpsTargetUtilization
	}
	if u, ok := p.float(TargetUtilizationPercentageAnnotationKey, 1, 100); ok {
		util = u / 100
	}
	s.TotalValue = total
	s.TargetValue = math.Max(TargetMin, total*util)

	s.TargetBurstCapacity = g.TargetBurstCapacity
	if k, v, ok := p.get(TargetBurstCapacityAnnotationKey); ok {
		f, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, "must be a number"))
		case f < 0 && f != -1:
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, "must be -1 (unlimited) or at least 0"))
		default:
			s.TargetBurstCapacity = f
		}
	}
}

// windows resolves the stable and panic windows and the panic threshold.
func (p *annotationParser) windows(s *Spec, g *Config) {
	s.StableWindow = g.StableWindow
	if d, ok := p.duration(WindowAnnotationKey, WindowMin, WindowMax); ok {
		s.StableWindow, s.Window = d, d
	}
	s.StableWindow = s.StableWindow.Truncate(time.Second)
	pwp := g.PanicWindowPercentage
	if f, ok := p.float(PanicWindowPercentageAnnotationKey, 1, 100); ok {
		pwp = f
	}
	// Knative's MakeMetric: rounded to the nearest second, at least one.
	s.PanicWindow = max(bucketSize, time.Duration(float64(s.StableWindow)*pwp/100).Round(time.Second))
	ptp := g.PanicThresholdPercentage
	if f, ok := p.float(PanicThresholdPercentageAnnotationKey, 110, 1000); ok {
		ptp = f
	}
	s.PanicThreshold = ptp / 100
}

// delays resolves how long scale-down decisions, the last instance and activation may take.
func (p *annotationParser) delays(s *Spec, g *Config) {
	s.ScaleDownDelay = g.ScaleDownDelay
	if d, ok := p.duration(ScaleDownDelayAnnotationKey, 0, WindowMax); ok {
		s.ScaleDownDelay = d
	}
	if k, v, ok := p.get(ScaleToZeroPodRetentionPeriodAnnotationKey); ok {
		// Knative bounds it to [0, 1h] and, unlike the windows, allows sub-second values.
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, `must be a duration such as "60s" or "2m"`))
		case d < 0 || d > WindowMax:
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, fmt.Sprintf("must be between 0s and %v", WindowMax)))
		default:
			s.ScaleToZeroPodRetention = d
		}
	}
	// The progress deadline is validated with the revision's metadata; here it only matters
	// when it parses.
	if d, err := time.ParseDuration(p.anns[ProgressDeadlineAnnotationKey]); err == nil && d > 0 {
		s.ProgressDeadline = d
	}
}

// scaleBounds resolves min-, max-, initial- and activation-scale and checks them against each
// other and the cluster's max-scale-limit.
func (p *annotationParser) scaleBounds(s *Spec, g *Config) {
	s.MinScale, s.MaxScale = g.MinScale, g.MaxScale
	minSet, maxSet := false, false
	if n, ok := p.integer(MinScaleAnnotationKey, 0); ok {
		s.MinScale, minSet = n, true
	}
	if n, ok := p.integer(MaxScaleAnnotationKey, 0); ok {
		s.MaxScale, maxSet = n, true
	}
	if maxSet && s.MaxScale != 0 && s.MaxScale < s.MinScale {
		k, _, _ := p.get(MaxScaleAnnotationKey)
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), strconv.Itoa(s.MaxScale),
			fmt.Sprintf("max-scale=%d is less than min-scale=%d", s.MaxScale, s.MinScale)))
	} else if minSet && !maxSet && s.MaxScale != 0 && s.MinScale > s.MaxScale {
		k, _, _ := p.get(MinScaleAnnotationKey)
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), strconv.Itoa(s.MinScale),
			fmt.Sprintf("min-scale=%d is greater than the cluster's max-scale=%d", s.MinScale, s.MaxScale)))
	}
	if g.MaxScaleLimit > 0 {
		k, _, ok := p.get(MaxScaleAnnotationKey)
		if !ok {
			k = MaxScaleAnnotationKey
		}
		switch {
		case s.MaxScale == 0:
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), "0",
				fmt.Sprintf("max-scale=0 (unbounded) is not allowed: the cluster's max-scale-limit is %d", g.MaxScaleLimit)))
		case s.MaxScale > g.MaxScaleLimit:
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), strconv.Itoa(s.MaxScale),
				fmt.Sprintf("must be between 1 and the cluster's max-scale-limit %d", g.MaxScaleLimit)))
		}
	}

	s.InitialScale = g.InitialScale
	if n, ok := p.integer(InitialScaleAnnotationKey, 0); ok {
		if n == 0 && !g.AllowZeroInitialScale {
			k, v, _ := p.get(InitialScaleAnnotationKey)
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), v,
				"initial-scale=0 is not allowed by the cluster (allow-zero-initial-scale is false)"))
		} else {
			s.InitialScale = n
		}
	}

	s.ActivationScale = 1
	if n, ok := p.integer(ActivationScaleAnnotationKey, 1); ok {
		s.ActivationScale = n
		if s.MaxScale != 0 && n > s.MaxScale {
			k, v, _ := p.get(ActivationScaleAnnotationKey)
			p.errs = append(p.errs, field.Invalid(p.path.Key(k), v,
				fmt.Sprintf("activation-scale=%d is greater than max-scale=%d", n, s.MaxScale)))
		}
	}
}

// annotationParser reads annotations and collects field errors naming them.
type annotationParser struct {
	anns map[string]string
	path *field.Path
	errs field.ErrorList
}

// get returns the key actually present (canonical first, then its camelCase spelling) and value.
func (p *annotationParser) get(key string) (string, string, bool) {
	if v, ok := p.anns[key]; ok {
		return key, v, true
	}
	if old := legacyKey(key); old != "" {
		if v, ok := p.anns[old]; ok {
			return old, v, true
		}
	}
	return key, "", false
}

// float parses a number within [lo, hi]; ok is false when absent or invalid (error recorded).
func (p *annotationParser) float(key string, lo, hi float64) (float64, bool) {
	k, v, ok := p.get(key)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, "must be a number"))
		return 0, false
	}
	if f < lo || f > hi {
		msg := fmt.Sprintf("must be between %g and %g", lo, hi)
		if math.IsInf(hi, 1) {
			msg = fmt.Sprintf("must be at least %g", lo)
		}
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, msg))
		return 0, false
	}
	return f, true
}

// integer parses a whole number >= lo that fits in an int32, like Knative's scale annotations.
func (p *annotationParser) integer(key string, lo int) (int, bool) {
	k, v, ok := p.get(key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	switch {
	case errors.Is(err, strconv.ErrRange):
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, fmt.Sprintf("must be between %d and %d", lo, math.MaxInt32)))
		return 0, false
	case err != nil:
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, "must be a whole number"))
		return 0, false
	case n < int64(lo):
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, fmt.Sprintf("must be at least %d", lo)))
		return 0, false
	}
	return int(n), true
}

// duration parses a Go duration within [lo, hi] with at most second precision.
func (p *annotationParser) duration(key string, lo, hi time.Duration) (time.Duration, bool) {
	k, v, ok := p.get(key)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, `must be a duration such as "60s" or "2m"`))
		return 0, false
	case d < lo || d > hi:
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, fmt.Sprintf("must be between %v and %v", lo, hi)))
		return 0, false
	case d.Truncate(time.Second) != d:
		p.errs = append(p.errs, field.Invalid(p.path.Key(k), v, "must be specified with at most second precision"))
		return 0, false
	}
	return d, true
}
