package autoscaling

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/api/fielderr"
)

// ValidateAnnotations checks a revision's (or its template's) autoscaling annotations against
// the cluster settings, as Knative's webhook does; paths are the annotation keys. On top of
// Knative's rules, when cfg.MaxScaleLimit is set, min-scale and initial-scale above it are
// refused too (Knative refuses only max-scale above it): no revision could ever honour them.
func ValidateAnnotations(cfg *Config, anns map[string]string) *fielderr.Error {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	return validateClass(anns).
		Also(validateMinMaxScale(cfg, anns)).
		Also(validateFloats(anns)).
		Also(validateWindow(anns)).
		Also(validateLastPodRetention(anns)).
		Also(validateScaleDownDelay(anns)).
		Also(validateMetric(cfg, anns)).
		Also(validateAlgorithm(anns)).
		Also(validateInitialScale(cfg, anns))
}

// intAtLeast0 reads an int32 annotation that must not be negative.
func intAtLeast0(m map[string]string, key Key) (int32, *fielderr.Error) {
	k, v, ok := key.Get(m)
	if !ok {
		return 0, nil
	}
	i, err := strconv.ParseInt(v, 10, 32)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fielderr.OutOfBounds(v, 0, math.MaxInt32, k)
	case err != nil:
		return 0, fielderr.Invalid(v, k)
	case i < 0:
		return 0, fielderr.OutOfBounds(v, 0, math.MaxInt32, k)
	}
	return int32(i), nil
}

func validateClass(m map[string]string) *fielderr.Error {
	// Any class outside knative.dev is someone else's autoscaler and left alone.
	if k, v, ok := ClassAnnotation.Get(m); ok && strings.HasSuffix(v, ".knative.dev") && v != KPA && v != HPA {
		return fielderr.Invalid(v, k)
	}
	return nil
}

func validateAlgorithm(m map[string]string) *fielderr.Error {
	if _, v, _ := ClassAnnotation.Get(m); v != KPA {
		return nil // only the KPA's values are known
	}
	if k, v, _ := MetricAggregationAlgorithmAnnotation.Get(m); v != "" {
		switch v {
		case MetricAggregationAlgorithmLinear, MetricAggregationAlgorithmWeightedExponential, MetricAggregationAlgorithmWeightedExponentialAlt:
		default:
			return fielderr.Invalid(v, k)
		}
	}
	return nil
}

func validateFloats(m map[string]string) (errs *fielderr.Error) {
	if k, v, ok := PanicWindowPercentageAnnotation.Get(m); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil {
			errs = errs.Also(fielderr.Invalid(v, k))
		} else if f < PanicWindowPercentageMin || f > PanicWindowPercentageMax {
			// Knative replaces, not adds to, what was found so far here.
			errs = fielderr.OutOfBounds(v, PanicWindowPercentageMin, PanicWindowPercentageMax, k)
		}
	}
	if k, v, ok := PanicThresholdPercentageAnnotation.Get(m); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil {
			errs = errs.Also(fielderr.Invalid(v, k))
		} else if f < PanicThresholdPercentageMin || f > PanicThresholdPercentageMax {
			errs = errs.Also(fielderr.OutOfBounds(v, PanicThresholdPercentageMin, PanicThresholdPercentageMax, k))
		}
	}
	if k, v, ok := TargetAnnotation.Get(m); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil {
			errs = errs.Also(fielderr.Invalid(v, k))
		} else if f < TargetMin {
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("target %s should be at least %g", v, TargetMin), k))
		}
	}
	if k, v, ok := TargetUtilizationPercentageAnnotation.Get(m); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil {
			errs = errs.Also(fielderr.Invalid(v, k))
		} else if f < 1 || f > 100 {
			errs = errs.Also(fielderr.OutOfBounds(v, 1, 100, k))
		}
	}
	if k, v, ok := TargetBurstCapacityAnnotation.Get(m); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 && f != -1 {
			errs = errs.Also(fielderr.Invalid(v, k))
		}
	}
	return errs
}

func validateScaleDownDelay(m map[string]string) *fielderr.Error {
	if k, v, ok := ScaleDownDelayAnnotation.Get(m); ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return fielderr.Invalid(v, k)
		case d < 0 || d > WindowMax:
			return fielderr.OutOfBounds(v, 0*time.Second, WindowMax, k)
		case d.Round(time.Second) != d:
			return fielderr.Generic("must be specified with at most second precision", k)
		}
	}
	return nil
}

func validateLastPodRetention(m map[string]string) *fielderr.Error {
	if k, v, ok := ScaleToZeroPodRetentionPeriodAnnotation.Get(m); ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return fielderr.Invalid(v, k)
		case d < 0 || d > WindowMax:
			return fielderr.OutOfBounds(v, time.Duration(0), WindowMax, k)
		}
	}
	return nil
}

func validateWindow(m map[string]string) *fielderr.Error {
	if _, v, ok := WindowAnnotation.Get(m); ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return fielderr.Invalid(v, WindowAnnotationKey)
		case d < WindowMin || d > WindowMax:
			return fielderr.OutOfBounds(v, WindowMin, WindowMax, WindowAnnotationKey)
		case d.Truncate(time.Second) != d:
			return fielderr.Generic("must be specified with at most second precision", WindowAnnotationKey)
		}
	}
	return nil
}

func validateMinMaxScale(cfg *Config, m map[string]string) *fielderr.Error {
	lo, errs := intAtLeast0(m, MinScaleAnnotation)
	hi, err := intAtLeast0(m, MaxScaleAnnotation)
	errs = errs.Also(err)
	if hi != 0 && hi < lo {
		errs = errs.Also(fielderr.Generic(fmt.Sprintf("max-scale=%d is less than min-scale=%d", hi, lo),
			MaxScaleAnnotationKey, MinScaleAnnotationKey))
	}
	if k, _, ok := MaxScaleAnnotation.Get(m); ok && cfg.MaxScaleLimit > 0 {
		if hi > cfg.MaxScaleLimit {
			errs = errs.Also(fielderr.OutOfBounds(hi, 1, cfg.MaxScaleLimit, k))
		}
		if hi == 0 {
			errs = errs.Also(fielderr.Generic(fmt.Sprint("max-scale=0 (unlimited), must be less than ", cfg.MaxScaleLimit), k))
		}
	}
	if k, _, ok := MinScaleAnnotation.Get(m); ok && cfg.MaxScaleLimit > 0 && lo > cfg.MaxScaleLimit {
		errs = errs.Also(fielderr.OutOfBounds(lo, 0, cfg.MaxScaleLimit, k))
	}
	if k, v, ok := ActivationScale.Get(m); ok {
		n, err := strconv.ParseInt(v, 10, 32)
		switch {
		case err != nil:
			errs = errs.Also(fielderr.Invalid(v, k))
		case lo > int32(n):
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("min-scale=%d is greater than activation-scale=%d", lo, n), k))
		case hi < int32(n) && hi != 0:
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("max-scale=%d is less than activation-scale=%d", hi, n), k))
		case n < 2:
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("activation-scale=%d must be greater than 1", n), k))
		}
	}
	return errs
}

func validateMetric(cfg *Config, m map[string]string) *fielderr.Error {
	_, metric, ok := MetricAnnotation.Get(m)
	if !ok {
		return nil
	}
	class := cfg.PodAutoscalerClass
	if _, c, ok := ClassAnnotation.Get(m); ok {
		class = c
	}
	switch class {
	case KPA:
		if metric == Concurrency || metric == RPS {
			return nil
		}
	case HPA:
		if metric != "" {
			return nil
		}
	default:
		return nil // other autoscalers have their own metrics
	}
	return fielderr.Invalid(metric, MetricAnnotationKey)
}

func validateInitialScale(cfg *Config, m map[string]string) *fielderr.Error {
	k, v, ok := InitialScaleAnnotation.Get(m)
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return fielderr.Invalid(v, k)
	case n < 0:
		return fielderr.Invalid(v, k+" must be greater than 0")
	case !cfg.AllowZeroInitialScale && n == 0:
		return fielderr.Invalid(v, k+"=0 not allowed by cluster")
	case cfg.MaxScaleLimit > 0 && n > int(cfg.MaxScaleLimit):
		return fielderr.OutOfBounds(n, 0, cfg.MaxScaleLimit, k)
	}
	return nil
}
