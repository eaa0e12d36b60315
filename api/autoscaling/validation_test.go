package autoscaling

import (
	"strings"
	"testing"
)

// TestMaxScaleLimit: with config-autoscaler's max-scale-limit set, Knative refuses max-scale
// above it or unbounded (annotation_validation_test.go TestValidateAnnotations, "max-scale-limit"
// cases); Skiff also refuses min-scale and initial-scale above it, which no revision could
// reach. Paths are the annotation keys, as Knative writes them.
func TestMaxScaleLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxScaleLimit, cfg.MaxScale = 10, 10
	for _, tc := range []struct {
		anns map[string]string
		want string
	}{
		{map[string]string{MaxScaleAnnotationKey: "10"}, ""},
		{map[string]string{MaxScaleAnnotationKey: "11"}, "expected 1 <= 11 <= 10: autoscaling.knative.dev/max-scale"},
		{map[string]string{MaxScaleAnnotationKey: "0"}, "max-scale=0 (unlimited), must be less than 10: autoscaling.knative.dev/max-scale"},
		{map[string]string{GroupName + "/maxScale": "12"}, "expected 1 <= 12 <= 10: autoscaling.knative.dev/maxScale"},
		{map[string]string{MinScaleAnnotationKey: "11"}, "expected 0 <= 11 <= 10: autoscaling.knative.dev/min-scale"},
		{map[string]string{MinScaleAnnotationKey: "10"}, ""},
		{map[string]string{InitialScaleAnnotationKey: "11"}, "expected 0 <= 11 <= 10: autoscaling.knative.dev/initial-scale"},
		{map[string]string{InitialScaleAnnotationKey: "10"}, ""},
	} {
		err := ValidateAnnotations(cfg, tc.anns)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: refused: %v", tc.anns, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want %q", tc.anns, err, tc.want)
		}
	}
	// Without a limit (Knative's default) nothing is bounded.
	if err := ValidateAnnotations(DefaultConfig(), map[string]string{MinScaleAnnotationKey: "1000", InitialScaleAnnotationKey: "1000"}); err != nil {
		t.Errorf("no limit: %v", err)
	}
}

// TestConfigFromMap ports config_test.go TestNewConfig's cases of Knative's autoscaler config.
func TestConfigFromMap(t *testing.T) {
	c, err := NewConfigFromMap(map[string]string{"container-concurrency-target-percentage": "50", "max-scale-limit": "100", "max-scale": "20", "_example": "ignored"})
	if err != nil || c.ContainerConcurrencyTargetFraction != 0.5 || c.MaxScaleLimit != 100 || c.MaxScale != 20 {
		t.Fatalf("%+v, %v", c, err)
	}
	for data, want := range map[string]map[string]string{
		"max-scale = 0, must be in [1, max-scale-limit(5)] range": {"max-scale-limit": "5"},
		"stable-window = 5s":                        {"stable-window": "5s"},
		"initial-scale = 0":                         {"initial-scale": "0"},
		`max-scale-up-rate: "x": not a number`:      {"max-scale-up-rate": "x"},
		"unknown key(s) max-scale-limt":             {"max-scale-limt": "1"},
		"min-scale (5) must be less than max-scale": {"min-scale": "5", "max-scale": "2"},
	} {
		if _, err := NewConfigFromMap(want); err == nil || !strings.Contains(err.Error(), data) {
			t.Errorf("%v: %v, want an error saying %q", want, err, data)
		}
	}
}
