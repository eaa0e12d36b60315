package autoscaler

import (
	"math"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestSpecForDefaults(t *testing.T) {
	for _, tc := range []struct {
		name              string
		anns              map[string]string
		cc                int64
		wantTarget        float64
		wantTotal         float64
		wantMetric        string
		wantStable, panic time.Duration
	}{
		{"no annotations", nil, 0, 70, 100, Concurrency, 60 * time.Second, 6 * time.Second},
		{"containerConcurrency is the target", nil, 10, 7, 10, Concurrency, 60 * time.Second, 6 * time.Second},
		{"target annotation", map[string]string{TargetAnnotationKey: "10"}, 0, 7, 10, Concurrency, 60 * time.Second, 6 * time.Second},
		{"target above containerConcurrency is capped", map[string]string{TargetAnnotationKey: "50"}, 10, 7, 10, Concurrency, 60 * time.Second, 6 * time.Second},
		{"utilization 100", map[string]string{TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0, 10, 10, Concurrency, 60 * time.Second, 6 * time.Second},
		{"rps default", map[string]string{MetricAnnotationKey: RPS}, 0, 140, 200, RPS, 60 * time.Second, 6 * time.Second},
		{"rps ignores containerConcurrency", map[string]string{MetricAnnotationKey: RPS, TargetAnnotationKey: "30"}, 5, 21, 30, RPS, 60 * time.Second, 6 * time.Second},
		{"window and panic percentage", map[string]string{WindowAnnotationKey: "2m", PanicWindowPercentageAnnotationKey: "25"}, 0, 70, 100, Concurrency, 2 * time.Minute, 30 * time.Second},
		{"tiny panic window is one second", map[string]string{WindowAnnotationKey: "6s", PanicWindowPercentageAnnotationKey: "1"}, 0, 70, 100, Concurrency, 6 * time.Second, time.Second},
		{"class kpa accepted", map[string]string{ClassAnnotationKey: KPA}, 0, 70, 100, Concurrency, 60 * time.Second, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, errs := SpecFor(tc.anns, tc.cc, DefaultConfig())
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs.ToAggregate())
			}
			if s.TargetValue != tc.wantTarget || s.TotalValue != tc.wantTotal || s.Metric != tc.wantMetric {
				t.Fatalf("target %g total %g metric %s, want %g %g %s", s.TargetValue, s.TotalValue, s.Metric, tc.wantTarget, tc.wantTotal, tc.wantMetric)
			}
			if s.StableWindow != tc.wantStable || s.PanicWindow != tc.panic {
				t.Fatalf("windows %v/%v, want %v/%v", s.StableWindow, s.PanicWindow, tc.wantStable, tc.panic)
			}
		})
	}

	s, _ := SpecFor(nil, 0, DefaultConfig())
	// Knative's config-autoscaler defaults (pkg/autoscaler/config/config.go): target burst
	// capacity 211.
	want := Spec{
		Class: KPA, Metric: Concurrency, Aggregation: Linear, TargetValue: 70, TotalValue: 100,
		TargetBurstCapacity: 211, PanicThreshold: 2,
		StableWindow: 60 * time.Second, PanicWindow: 6 * time.Second, MinScale: 0, MaxScale: 0,
		InitialScale: 1, ActivationScale: 1, MaxScaleUpRate: 1000, MaxScaleDownRate: 2,
		ScaleToZeroPodRetention: -1,
	}
	if s != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", s, want)
	}
}

func TestSpecForErrors(t *testing.T) {
	const p = "metadata.annotations[autoscaling.knative.dev/"
	for _, tc := range []struct {
		name string
		anns map[string]string
		cfg  func(*Config)
		want []string
	}{
		{"min-scale not a number", map[string]string{MinScaleAnnotationKey: "x"}, nil,
			[]string{p + `min-scale]: Invalid value: "x": must be a whole number`}},
		{"min-scale negative", map[string]string{MinScaleAnnotationKey: "-1"}, nil,
			[]string{p + `min-scale]: Invalid value: "-1": must be at least 0`}},
		{"max-scale too large", map[string]string{MaxScaleAnnotationKey: "99999999999"}, nil,
			[]string{p + `max-scale]: Invalid value: "99999999999"`}},
		{"min-scale above max-scale", map[string]string{MinScaleAnnotationKey: "5", MaxScaleAnnotationKey: "2"}, nil,
			[]string{p + `max-scale]: Invalid value: "2": max-scale=2 is less than min-scale=5`}},
		{"legacy spelling is named as written", map[string]string{"autoscaling.knative.dev/minScale": "x"}, nil,
			[]string{p + `minScale]: Invalid value: "x"`}},
		// Knative's validateClass refuses only unknown classes of its own domain.
		{"class of Knative's domain", map[string]string{ClassAnnotationKey: "foo.autoscaling.knative.dev"}, nil,
			[]string{p + `class]: Unsupported value: "foo.autoscaling.knative.dev"`}},
		{"hpa metric empty", map[string]string{ClassAnnotationKey: HPA, MetricAnnotationKey: ""}, nil,
			[]string{p + `metric]: Invalid value: ""`}},
		{"aggregation algorithm with class kpa", map[string]string{ClassAnnotationKey: KPA, MetricAggregationAlgorithmAnnotationKey: "median"}, nil,
			[]string{p + `metric-aggregation-algorithm]: Unsupported value: "median"`}},
		{"pod retention", map[string]string{ScaleToZeroPodRetentionPeriodAnnotationKey: "-1s"}, nil,
			[]string{p + `scale-to-zero-pod-retention-period]: Invalid value: "-1s": must be between 0s and 1h0m0s`}},
		{"metric cpu", map[string]string{MetricAnnotationKey: "cpu"}, nil,
			[]string{p + `metric]: Unsupported value: "cpu": supported values: "concurrency", "rps"`}},
		{"target too small", map[string]string{TargetAnnotationKey: "0"}, nil,
			[]string{p + `target]: Invalid value: "0": must be at least 0.01`}},
		{"utilization out of range", map[string]string{TargetUtilizationPercentageAnnotationKey: "101"}, nil,
			[]string{p + `target-utilization-percentage]: Invalid value: "101": must be between 1 and 100`}},
		{"window too short", map[string]string{WindowAnnotationKey: "5s"}, nil,
			[]string{p + `window]: Invalid value: "5s": must be between 6s and 1h0m0s`}},
		{"window too long", map[string]string{WindowAnnotationKey: "61m"}, nil,
			[]string{p + `window]: Invalid value: "61m"`}},
		{"window sub-second", map[string]string{WindowAnnotationKey: "6500ms"}, nil,
			[]string{p + `window]: Invalid value: "6500ms": must be specified with at most second precision`}},
		{"window not a duration", map[string]string{WindowAnnotationKey: "60"}, nil,
			[]string{p + `window]: Invalid value: "60"`}},
		{"panic window percentage", map[string]string{PanicWindowPercentageAnnotationKey: "0"}, nil,
			[]string{p + `panic-window-percentage]: Invalid value: "0": must be between 1 and 100`}},
		{"panic threshold", map[string]string{PanicThresholdPercentageAnnotationKey: "100"}, nil,
			[]string{p + `panic-threshold-percentage]: Invalid value: "100": must be between 110 and 1000`}},
		{"target burst capacity", map[string]string{TargetBurstCapacityAnnotationKey: "-2"}, nil,
			[]string{p + `target-burst-capacity]: Invalid value: "-2": must be -1 (unlimited) or at least 0`}},
		{"scale-down-delay", map[string]string{ScaleDownDelayAnnotationKey: "2h"}, nil,
			[]string{p + `scale-down-delay]: Invalid value: "2h": must be between 0s and 1h0m0s`}},
		{"initial-scale 0 not allowed", map[string]string{InitialScaleAnnotationKey: "0"}, nil,
			[]string{p + `initial-scale]: Invalid value: "0": initial-scale=0 is not allowed by the cluster`}},
		{"activation-scale 0", map[string]string{ActivationScaleAnnotationKey: "0"}, nil,
			[]string{p + `activation-scale]: Invalid value: "0": must be at least 1`}},
		{"activation-scale above max-scale", map[string]string{ActivationScaleAnnotationKey: "5", MaxScaleAnnotationKey: "3"}, nil,
			[]string{p + `activation-scale]: Invalid value: "5": activation-scale=5 is greater than max-scale=3`}},
		{"max-scale above the cluster's limit", map[string]string{MaxScaleAnnotationKey: "50"}, func(c *Config) { c.MaxScaleLimit = 10 },
			[]string{p + `max-scale]: Invalid value: "50": must be between 1 and the cluster's max-scale-limit 10`}},
		{"several errors at once", map[string]string{MinScaleAnnotationKey: "x", WindowAnnotationKey: "1s"}, nil,
			[]string{p + `min-scale]`, p + `window]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			_, errs := SpecFor(tc.anns, 0, cfg)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs.ToAggregate(), len(tc.want))
			}
			for _, want := range tc.want {
				found := false
				for _, e := range errs {
					found = found || strings.HasPrefix(e.Error(), want)
				}
				if !found {
					t.Errorf("no error starts with %s; got %v", want, errs.ToAggregate())
				}
			}
		})
	}

	t.Run("initial-scale 0 allowed by the cluster", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.AllowZeroInitialScale = true
		s, errs := SpecFor(map[string]string{InitialScaleAnnotationKey: "0"}, 0, cfg)
		if len(errs) > 0 || s.InitialScale != 0 {
			t.Fatalf("got %+v %v, want initial scale 0", s, errs)
		}
	})
}

// TestSpecForClasses: Knative accepts the hpa class and any class outside its domain
// (pkg/apis/autoscaling/annotation_validation.go validateClass, validateMetric); KPA is the
// default; HPA defaults to the cpu metric (pa_defaults.go defaultMetric) and takes any metric.
func TestSpecForClasses(t *testing.T) {
	for _, tc := range []struct {
		name              string
		anns              map[string]string
		class, metric     string
		target            float64
		wantAggregation   string
		wantRetention     time.Duration
		wantProgressDeadl time.Duration
	}{
		{"default class", nil, KPA, Concurrency, 0, Linear, -1, 0},
		{"hpa defaults to cpu", map[string]string{ClassAnnotationKey: HPA}, HPA, CPU, 0, Linear, -1, 0},
		{"hpa memory target", map[string]string{ClassAnnotationKey: HPA, MetricAnnotationKey: Memory, TargetAnnotationKey: "75"}, HPA, Memory, 75, Linear, -1, 0},
		{"hpa custom metric", map[string]string{ClassAnnotationKey: HPA, MetricAnnotationKey: "queue_depth"}, HPA, "queue_depth", 0, Linear, -1, 0},
		{"external class keeps any metric", map[string]string{ClassAnnotationKey: "custom.example.com", MetricAnnotationKey: "whatever"}, "custom.example.com", "whatever", 0, Linear, -1, 0},
		// validateAlgorithm checks the algorithm only when the class annotation says KPA.
		{"unknown algorithm without class annotation", map[string]string{MetricAggregationAlgorithmAnnotationKey: "median"}, KPA, Concurrency, 0, Linear, -1, 0},
		{"weighted", map[string]string{MetricAggregationAlgorithmAnnotationKey: "weightedExponential"}, KPA, Concurrency, 0, WeightedExponential, -1, 0},
		{"legacy weighted spelling", map[string]string{"autoscaling.knative.dev/metricAggregationAlgorithm": WeightedExponential}, KPA, Concurrency, 0, WeightedExponential, -1, 0},
		{"pod retention", map[string]string{ScaleToZeroPodRetentionPeriodAnnotationKey: "1m5s"}, KPA, Concurrency, 0, Linear, 65 * time.Second, 0},
		{"progress deadline", map[string]string{ProgressDeadlineAnnotationKey: "5s"}, KPA, Concurrency, 0, Linear, -1, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, errs := SpecFor(tc.anns, 0, DefaultConfig())
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs.ToAggregate())
			}
			if s.Class != tc.class || s.Metric != tc.metric || s.Target != tc.target || s.Aggregation != tc.wantAggregation ||
				s.ScaleToZeroPodRetention != tc.wantRetention || s.ProgressDeadline != tc.wantProgressDeadl {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

// TestSpecForPanicWindow ports knative/serving pkg/reconciler/autoscaling/resources/metric_test.go
// TestMakeMetric: the panic window is the stable window × percentage rounded to the nearest
// second, at least one second.
func TestSpecForPanicWindow(t *testing.T) {
	for _, tc := range []struct {
		window, pct string
		want        time.Duration
	}{
		{"", "", 6 * time.Second},     // defaults
		{"10s", "10", time.Second},    // with too short panic window
		{"10m", "", time.Minute},      // longer stable window, default 10%
		{"", "50", 30 * time.Second},  // longer panic window percentage
		{"", "51", 31 * time.Second},  // percentage + rounding (30.6s)
		{"", "10.5", 6 * time.Second}, // 6.3s rounds down
		{"13s", "", time.Second},      // 1.3s
		{"15s", "", 2 * time.Second},  // 1.5s rounds half away from zero
		{"1h", "1", 36 * time.Second}, // 36s
		{"7s", "7", time.Second},      // 0.49s: at least one second
	} {
		anns := map[string]string{}
		if tc.window != "" {
			anns[WindowAnnotationKey] = tc.window
		}
		if tc.pct != "" {
			anns[PanicWindowPercentageAnnotationKey] = tc.pct
		}
		s, errs := SpecFor(anns, 0, DefaultConfig())
		if len(errs) > 0 {
			t.Fatalf("%v: %v", anns, errs.ToAggregate())
		}
		if s.PanicWindow != tc.want {
			t.Errorf("window %q percentage %q: panic window %v, want %v", tc.window, tc.pct, s.PanicWindow, tc.want)
		}
	}
}

// TestSpecForMetricTarget ports knative/serving
// pkg/reconciler/autoscaling/resources/target_test.go TestResolveMetricTarget (whose config
// has 100% utilization) and kpa/resources/decider_test.go's target cases.
func TestSpecForMetricTarget(t *testing.T) {
	for _, tc := range []struct {
		name         string
		anns         map[string]string
		cc           int64
		util, ccDef  float64
		target, tota float64
	}{
		{"defaults", nil, 0, 100, 100, 100, 100},
		{"default CC + 80% TU", nil, 0, 80, 100, 80, 100},
		{"non-default CC and TU", nil, 0, 30, 2, 0.6, 2},
		{"cc 12 and TU=80%, but TU annotation 75%", map[string]string{TargetUtilizationPercentageAnnotationKey: "75"}, 12, 80, 100, 9, 12},
		{"cc 10 and TU=80%", nil, 10, 80, 100, 8, 10},
		{"cc 1 and TU=80%", nil, 1, 80, 100, 0.8, 1},
		{"cc 1", nil, 1, 100, 100, 1, 1},
		{"cc 10", nil, 10, 100, 100, 10, 10},
		{"target annotation 1", map[string]string{TargetAnnotationKey: "1"}, 0, 100, 100, 1, 1},
		{"target annotation 1 and TU=1%", map[string]string{TargetAnnotationKey: "1"}, 0, 1, 100, TargetMin, 1},
		{"target annotation 1 and TU=75%", map[string]string{TargetAnnotationKey: "1"}, 0, 75, 100, 0.75, 1},
		{"target annotation 10 and TU=75%", map[string]string{TargetAnnotationKey: "10"}, 0, 75, 100, 7.5, 10},
		{"cc greater than target annotation (ok)", map[string]string{TargetAnnotationKey: "1"}, 10, 100, 100, 1, 1},
		{"target annotation greater than default (ok)", map[string]string{TargetAnnotationKey: "500"}, 0, 100, 100, 500, 500},
		{"target annotation greater than cc (ignored for safety)", map[string]string{TargetAnnotationKey: "10"}, 1, 100, 100, 1, 1},
		{"RPS: defaults", map[string]string{MetricAnnotationKey: RPS}, 1, 70, 100, 140, 200},
		{"RPS: target annotation 1", map[string]string{MetricAnnotationKey: RPS, TargetAnnotationKey: "1"}, 0, 70, 100, 0.7, 1},
		{"RPS: TU annotation 75%", map[string]string{MetricAnnotationKey: RPS, TargetUtilizationPercentageAnnotationKey: "75"}, 0, 70, 100, 150, 200},
		{"RPS: target annotation greater than default", map[string]string{MetricAnnotationKey: RPS, TargetAnnotationKey: "300"}, 0, 70, 100, 210, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TargetUtilizationPercentage = tc.util
			cfg.ContainerConcurrencyTargetDefault = tc.ccDef
			s, errs := SpecFor(tc.anns, tc.cc, cfg)
			if len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			if math.Abs(s.TargetValue-tc.target) > 1e-9 || s.TotalValue != tc.tota {
				t.Fatalf("target %v total %v, want %v %v", s.TargetValue, s.TotalValue, tc.target, tc.tota)
			}
		})
	}
}

// TestSpecForScaleBounds tests the scale-bounds step of SpecFor on its own: min-, max-,
// initial- and activation-scale against each other and the cluster's limits. The cases are
// ported from knative/serving pkg/apis/autoscaling/annotation_validation_test.go
// (TestValidateAnnotations: the min/max/activation-scale and MaxScaleLimit cases, and
// TestValidateInitialScale); wantErr is a substring of the one error expected ("" for none).
func TestSpecForScaleBounds(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		anns                 map[string]string
		cfg                  func(*Config)
		wantMin, wantMax     int
		wantInitial, wantAct int
		wantErr              string
	}{
		{name: "minScale is 0", anns: map[string]string{MinScaleAnnotationKey: "0"}, wantInitial: 1, wantAct: 1},
		{name: "maxScale is 0", anns: map[string]string{MaxScaleAnnotationKey: "0"}, wantInitial: 1, wantAct: 1},
		{name: "minScale is -1", anns: map[string]string{MinScaleAnnotationKey: "-1"}, wantInitial: 1, wantAct: 1,
			wantErr: `min-scale]: Invalid value: "-1": must be at least 0`},
		{name: "maxScale is -1", anns: map[string]string{MaxScaleAnnotationKey: "-1"}, wantInitial: 1, wantAct: 1,
			wantErr: `max-scale]: Invalid value: "-1": must be at least 0`},
		{name: "minScale is foo", anns: map[string]string{MinScaleAnnotationKey: "foo"}, wantInitial: 1, wantAct: 1,
			wantErr: `min-scale]: Invalid value: "foo"`},
		{name: "minScale is 5", anns: map[string]string{MinScaleAnnotationKey: "5"}, wantMin: 5, wantInitial: 1, wantAct: 1},
		{name: "maxScale is 2", anns: map[string]string{MaxScaleAnnotationKey: "2"}, wantMax: 2, wantInitial: 1, wantAct: 1},
		{name: "minScale is 2, maxScale is 5", anns: map[string]string{MinScaleAnnotationKey: "2", MaxScaleAnnotationKey: "5"},
			wantMin: 2, wantMax: 5, wantInitial: 1, wantAct: 1},
		{name: "minScale is 5, maxScale is 2", anns: map[string]string{MinScaleAnnotationKey: "5", MaxScaleAnnotationKey: "2"},
			wantMin: 5, wantMax: 2, wantInitial: 1, wantAct: 1, wantErr: "max-scale=2 is less than min-scale=5"},
		{name: "minScale is 0, maxScale is 0", anns: map[string]string{MinScaleAnnotationKey: "0", MaxScaleAnnotationKey: "0"},
			wantInitial: 1, wantAct: 1},
		{name: "maxScale is greater than MaxScaleLimit", anns: map[string]string{MaxScaleAnnotationKey: "11"},
			cfg: func(c *Config) { c.MaxScaleLimit = 10 }, wantMax: 11, wantInitial: 1, wantAct: 1,
			wantErr: "must be between 1 and the cluster's max-scale-limit 10"},
		{name: "maxScale is greater than MaxScaleLimit and default MaxScale is set", anns: map[string]string{MaxScaleAnnotationKey: "20"},
			cfg: func(c *Config) { c.MaxScaleLimit, c.MaxScale = 10, 11 }, wantMax: 20, wantInitial: 1, wantAct: 1,
			wantErr: "must be between 1 and the cluster's max-scale-limit 10"},
		{name: "maxScale is explicitly 0 when MaxScaleLimit and default MaxScale are set", anns: map[string]string{MaxScaleAnnotationKey: "0"},
			cfg: func(c *Config) { c.MaxScaleLimit, c.MaxScale = 10, 1 }, wantInitial: 1, wantAct: 1,
			wantErr: "max-scale=0 (unbounded) is not allowed"},
		{name: "maxScale is less than MaxScaleLimit", anns: map[string]string{MaxScaleAnnotationKey: "9"},
			cfg: func(c *Config) { c.MaxScaleLimit = 10 }, wantMax: 9, wantInitial: 1, wantAct: 1},
		{name: "min-scale, activation-scale, max-scale all set appropriately",
			anns:    map[string]string{MinScaleAnnotationKey: "1", ActivationScaleAnnotationKey: "2", MaxScaleAnnotationKey: "3"},
			wantMin: 1, wantMax: 3, wantInitial: 1, wantAct: 2},
		{name: "max-scale is less than activation-scale", anns: map[string]string{MaxScaleAnnotationKey: "1", ActivationScaleAnnotationKey: "2"},
			wantMax: 1, wantInitial: 1, wantAct: 2, wantErr: "activation-scale=2 is greater than max-scale=1"},
		// TestValidateInitialScale.
		{name: "initial scale is zero but cluster doesn't allow", anns: map[string]string{InitialScaleAnnotationKey: "0"},
			wantInitial: 1, wantAct: 1, wantErr: "initial-scale=0 is not allowed by the cluster"},
		{name: "initial scale is zero and cluster allows", anns: map[string]string{InitialScaleAnnotationKey: "0"},
			cfg: func(c *Config) { c.AllowZeroInitialScale = true }, wantInitial: 0, wantAct: 1},
		{name: "initial scale is greater than 0", anns: map[string]string{InitialScaleAnnotationKey: "2"}, wantInitial: 2, wantAct: 1},
		{name: "initial scale is less than 0", anns: map[string]string{InitialScaleAnnotationKey: "-1"},
			wantInitial: 1, wantAct: 1, wantErr: `initial-scale]: Invalid value: "-1": must be at least 0`},
		{name: "initial scale non-parseable", anns: map[string]string{InitialScaleAnnotationKey: "invalid"},
			wantInitial: 1, wantAct: 1, wantErr: `initial-scale]: Invalid value: "invalid"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&g)
			}
			g = g.withDefaults()
			p := annotationParser{anns: tc.anns, path: field.NewPath("metadata", "annotations")}
			var s Spec
			p.scaleBounds(&s, &g)
			if s.MinScale != tc.wantMin || s.MaxScale != tc.wantMax || s.InitialScale != tc.wantInitial || s.ActivationScale != tc.wantAct {
				t.Errorf("min %d max %d initial %d activation %d, want %d %d %d %d",
					s.MinScale, s.MaxScale, s.InitialScale, s.ActivationScale, tc.wantMin, tc.wantMax, tc.wantInitial, tc.wantAct)
			}
			switch {
			case tc.wantErr == "" && len(p.errs) > 0:
				t.Errorf("unexpected errors: %v", p.errs.ToAggregate())
			case tc.wantErr != "" && (len(p.errs) != 1 || !strings.Contains(p.errs[0].Error(), tc.wantErr)):
				t.Errorf("errors %v, want one containing %q", p.errs, tc.wantErr)
			}
		})
	}
}
