package autoscaler

import (
	"strings"
	"testing"
	"time"
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
	want := Spec{
		Metric: Concurrency, TargetValue: 70, TotalValue: 100, TargetBurstCapacity: 200, PanicThreshold: 2,
		StableWindow: 60 * time.Second, PanicWindow: 6 * time.Second, MinScale: 0, MaxScale: 0,
		InitialScale: 1, ActivationScale: 1, MaxScaleUpRate: 1000, MaxScaleDownRate: 2,
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
		{"class hpa", map[string]string{ClassAnnotationKey: HPA}, nil,
			[]string{p + `class]: Invalid value: "hpa.autoscaling.knative.dev": hpa.autoscaling.knative.dev needs the Kubernetes HPA`}},
		{"class unknown", map[string]string{ClassAnnotationKey: "custom.example.com"}, nil,
			[]string{p + `class]: Invalid value: "custom.example.com": Skiff implements only`}},
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
