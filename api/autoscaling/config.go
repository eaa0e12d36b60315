package autoscaling

import (
	"fmt"
	"time"

	"github.com/skiff-dev/skiff/api/configmap"
)

// ConfigName is the name of Knative's ConfigMap holding these settings.
const ConfigName = "config-autoscaler"

// Config is Knative's config-autoscaler: the cluster-wide autoscaling settings revisions'
// annotations are defaulted from and checked against.
type Config struct {
	EnableScaleToZero bool
	// ContainerConcurrencyTargetFraction is container-concurrency-target-percentage as a
	// fraction (70 → 0.7).
	ContainerConcurrencyTargetFraction float64
	ContainerConcurrencyTargetDefault  float64
	RPSTargetDefault                   float64
	TargetBurstCapacity                float64
	ActivatorCapacity                  float64
	AllowZeroInitialScale              bool
	InitialScale                       int32
	MinScale                           int32
	// MaxScale is the max-scale of revisions that do not set one (0: unbounded).
	MaxScale int32
	// MaxScaleLimit is the highest max-scale a revision may ask for (0: no limit).
	MaxScaleLimit                 int32
	MaxScaleUpRate                float64
	MaxScaleDownRate              float64
	StableWindow                  time.Duration
	PanicWindowPercentage         float64
	PanicThresholdPercentage      float64
	ScaleToZeroGracePeriod        time.Duration
	ScaleToZeroPodRetentionPeriod time.Duration
	ScaleDownDelay                time.Duration
	// PodAutoscalerClass is the class of revisions that do not name one.
	PodAutoscalerClass string
}

// DefaultConfig is config-autoscaler as Knative ships it.
func DefaultConfig() *Config {
	return &Config{
		EnableScaleToZero:                  true,
		ContainerConcurrencyTargetFraction: 0.7,
		ContainerConcurrencyTargetDefault:  100,
		RPSTargetDefault:                   200,
		MaxScaleUpRate:                     1000,
		MaxScaleDownRate:                   2,
		TargetBurstCapacity:                211,
		PanicWindowPercentage:              10,
		ActivatorCapacity:                  100,
		PanicThresholdPercentage:           200,
		StableWindow:                       60 * time.Second,
		ScaleToZeroGracePeriod:             30 * time.Second,
		PodAutoscalerClass:                 KPA,
		InitialScale:                       1,
	}
}

// NewConfigFromMap reads config-autoscaler's data over Knative's defaults and checks it as
// Knative does.
func NewConfigFromMap(data map[string]string) (*Config, error) {
	c := DefaultConfig()
	if err := c.Apply(data); err != nil {
		return nil, err
	}
	return c, nil
}

// Apply reads config-autoscaler's data over c's current values and checks the result.
func (c *Config) Apply(data map[string]string) error {
	pct := c.ContainerConcurrencyTargetFraction * 100
	if err := configmap.Parse(ConfigName, data,
		configmap.String("pod-autoscaler-class", &c.PodAutoscalerClass),
		configmap.Bool("enable-scale-to-zero", &c.EnableScaleToZero),
		configmap.Bool("allow-zero-initial-scale", &c.AllowZeroInitialScale),
		configmap.Float64("max-scale-up-rate", &c.MaxScaleUpRate),
		configmap.Float64("max-scale-down-rate", &c.MaxScaleDownRate),
		configmap.Float64("container-concurrency-target-percentage", &pct),
		configmap.Float64("container-concurrency-target-default", &c.ContainerConcurrencyTargetDefault),
		configmap.Float64("requests-per-second-target-default", &c.RPSTargetDefault),
		configmap.Float64("target-burst-capacity", &c.TargetBurstCapacity),
		configmap.Float64("panic-window-percentage", &c.PanicWindowPercentage),
		configmap.Float64("activator-capacity", &c.ActivatorCapacity),
		configmap.Float64("panic-threshold-percentage", &c.PanicThresholdPercentage),
		configmap.Int32("initial-scale", &c.InitialScale),
		configmap.Int32("min-scale", &c.MinScale),
		configmap.Int32("max-scale", &c.MaxScale),
		configmap.Int32("max-scale-limit", &c.MaxScaleLimit),
		configmap.Duration("stable-window", &c.StableWindow),
		configmap.Duration("scale-down-delay", &c.ScaleDownDelay),
		configmap.Duration("scale-to-zero-grace-period", &c.ScaleToZeroGracePeriod),
		configmap.Duration("scale-to-zero-pod-retention-period", &c.ScaleToZeroPodRetentionPeriod),
	); err != nil {
		return err
	}
	// Knative takes values in (0, 1] as fractions already, for legacy reasons.
	c.ContainerConcurrencyTargetFraction = pct
	if pct > 1 {
		c.ContainerConcurrencyTargetFraction = pct / 100
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%s: %w", ConfigName, err)
	}
	return nil
}

// Validate checks the settings together, with Knative's rules and words.
func (c *Config) Validate() error {
	switch {
	case c.ScaleToZeroGracePeriod <= 0:
		return fmt.Errorf("scale-to-zero-grace-period must be positive, was: %v", c.ScaleToZeroGracePeriod)
	case c.ScaleDownDelay < 0:
		return fmt.Errorf("scale-down-delay cannot be negative, was: %v", c.ScaleDownDelay)
	case c.ScaleDownDelay.Round(time.Second) != c.ScaleDownDelay:
		return fmt.Errorf("scale-down-delay = %v, must be specified with at most second precision", c.ScaleDownDelay)
	case c.ScaleToZeroPodRetentionPeriod < 0:
		return fmt.Errorf("scale-to-zero-pod-retention-period cannot be negative, was: %v", c.ScaleToZeroPodRetentionPeriod)
	case c.TargetBurstCapacity < 0 && c.TargetBurstCapacity != -1:
		return fmt.Errorf("target-burst-capacity must be either non-negative or -1 (for unlimited), was: %f", c.TargetBurstCapacity)
	case c.ContainerConcurrencyTargetFraction <= 0 || c.ContainerConcurrencyTargetFraction > 1:
		return fmt.Errorf("container-concurrency-target-percentage = %f is outside of valid range of (0, 100]", c.ContainerConcurrencyTargetFraction)
	case c.ContainerConcurrencyTargetFraction*c.ContainerConcurrencyTargetDefault < TargetMin:
		return fmt.Errorf("container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of %v, can't be less than %v",
			c.ContainerConcurrencyTargetFraction*c.ContainerConcurrencyTargetDefault, TargetMin)
	case c.RPSTargetDefault < TargetMin:
		return fmt.Errorf("requests-per-second-target-default must be at least %v, was: %v", TargetMin, c.RPSTargetDefault)
	case c.ActivatorCapacity < 1:
		return fmt.Errorf("activator-capacity = %v, must be at least 1", c.ActivatorCapacity)
	case c.MaxScaleUpRate <= 1:
		return fmt.Errorf("max-scale-up-rate = %v, must be greater than 1.0", c.MaxScaleUpRate)
	case c.MaxScaleDownRate <= 1:
		return fmt.Errorf("max-scale-down-rate = %v, must be greater than 1.0", c.MaxScaleDownRate)
	case c.StableWindow < WindowMin || c.StableWindow > WindowMax:
		return fmt.Errorf("stable-window = %v, must be in [%v; %v] range", c.StableWindow, WindowMin, WindowMax)
	case c.StableWindow.Round(time.Second) != c.StableWindow:
		return fmt.Errorf("stable-window = %v, must be specified with at most second precision", c.StableWindow)
	case c.PanicWindowPercentage < PanicWindowPercentageMin || c.PanicWindowPercentage > PanicWindowPercentageMax:
		return fmt.Errorf("panic-window-percentage = %v, must be in [%v, %v] interval", c.PanicWindowPercentage, PanicWindowPercentageMin, PanicWindowPercentageMax)
	case c.InitialScale < 0 || c.InitialScale == 0 && !c.AllowZeroInitialScale:
		return fmt.Errorf("initial-scale = %v, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)", c.InitialScale)
	case c.MinScale < 0:
		return fmt.Errorf("min-scale = %v, must be at least 0", c.MinScale)
	case c.MaxScaleLimit < 0:
		return fmt.Errorf("max-scale-limit = %v, must be at least 0", c.MaxScaleLimit)
	}
	minMax := int32(0)
	if c.MaxScaleLimit > 0 {
		minMax = 1 // a default max-scale is needed when there is a limit
	}
	if c.MaxScale < minMax || c.MaxScaleLimit > 0 && c.MaxScale > c.MaxScaleLimit {
		return fmt.Errorf("max-scale = %d, must be in [%d, max-scale-limit(%d)] range", c.MaxScale, minMax, c.MaxScaleLimit)
	}
	if c.MinScale > c.MaxScale && c.MaxScale > 0 {
		return fmt.Errorf("min-scale (%d) must be less than max-scale (%d)", c.MinScale, c.MaxScale)
	}
	return nil
}
