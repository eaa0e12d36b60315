package autoscaler

import (
	"fmt"
	"testing"

	"github.com/skiff-dev/skiff/api/autoscaling"
	"github.com/skiff-dev/skiff/internal/recorded"
)

// TestSpecForAgainstKnative runs testdata/spec-knative.jsonl: random config-autoscaler
// settings and revision annotations with what Knative Serving's own code resolved from them
// (its header says which functions). SpecFor, on the Config built from the same ConfigMap as
// skiff up builds it, must give the same decider spec, windows and scale bounds.
func TestSpecForAgainstKnative(t *testing.T) {
	type specCase struct {
		Config               map[string]string `json:"config"`
		Annotations          map[string]string `json:"annotations"`
		ContainerConcurrency int64             `json:"containerConcurrency"`
		Want                 map[string]string `json:"want"`
	}
	for _, c := range recorded.Cases[specCase](t, "testdata/spec-knative.jsonl", 500) {
		as := autoscaling.DefaultConfig()
		if err := as.Apply(c.Config); err != nil {
			t.Fatalf("%v: %v", c.Config, err)
		}
		a := DefaultConfig()
		a.EnableScaleToZero, a.ScaleToZeroGracePeriod, a.StableWindow = as.EnableScaleToZero, as.ScaleToZeroGracePeriod, as.StableWindow
		a.MaxScaleUpRate, a.MaxScaleDownRate = as.MaxScaleUpRate, as.MaxScaleDownRate
		a.PanicWindowPercentage, a.PanicThresholdPercentage = as.PanicWindowPercentage, as.PanicThresholdPercentage
		a.TargetUtilizationPercentage = as.ContainerConcurrencyTargetFraction * 100
		a.ContainerConcurrencyTargetDefault, a.RPSTargetDefault = as.ContainerConcurrencyTargetDefault, as.RPSTargetDefault
		a.TargetBurstCapacity = as.TargetBurstCapacity
		a.InitialScale, a.AllowZeroInitialScale = int(as.InitialScale), as.AllowZeroInitialScale
		a.MinScale, a.MaxScale, a.MaxScaleLimit = int(as.MinScale), int(as.MaxScale), int(as.MaxScaleLimit)
		a.ScaleDownDelay = as.ScaleDownDelay
		ann := map[string]string{}
		for k, v := range c.Annotations {
			ann["autoscaling.knative.dev/"+k] = v
		}
		s, errs := SpecFor(ann, c.ContainerConcurrency, a)
		if len(errs) > 0 {
			t.Errorf("config %v annotations %v: %v", c.Config, c.Annotations, errs)
			continue
		}
		f6 := func(v float64) string { return fmt.Sprintf("%.6f", v) }
		got := map[string]string{
			"metric": s.Metric, "target": f6(s.TargetValue), "total": f6(s.TotalValue), "tbc": f6(s.TargetBurstCapacity),
			"panicThreshold": f6(s.PanicThreshold), "stableWindow": s.StableWindow.String(), "panicWindow": s.PanicWindow.String(),
			"scaleDownDelay": s.ScaleDownDelay.String(), "activationScale": fmt.Sprint(max(1, s.ActivationScale)),
			"initialScale": fmt.Sprint(s.InitialScale), "minScale": fmt.Sprint(s.MinScale), "maxScale": fmt.Sprint(s.MaxScale),
			"maxUp": fmt.Sprint(s.MaxScaleUpRate), "maxDown": fmt.Sprint(s.MaxScaleDownRate),
		}
		for k, want := range c.Want {
			if k == "activationScale" && want == "0" {
				want = "1" // Knative's 0 (unset) and 1 decide alike
			}
			if got[k] != want {
				t.Errorf("config %v annotations %v cc %d: %s = %s, Knative %s", c.Config, c.Annotations, c.ContainerConcurrency, k, got[k], want)
			}
		}
	}
}
