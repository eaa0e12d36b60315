// Package autoscaling holds Knative's autoscaling.knative.dev annotations, the cluster-wide
// config-autoscaler settings they are checked against, and the check itself, as Knative's
// webhook applies it (knative.dev/serving pkg/apis/autoscaling).
package autoscaling

import (
	"time"
)

// GroupName prefixes every autoscaling annotation.
const GroupName = "autoscaling.knative.dev"

// Annotation keys, as Knative spells them.
const (
	ClassAnnotationKey                    = GroupName + "/class"
	MinScaleAnnotationKey                 = GroupName + "/min-scale"
	MaxScaleAnnotationKey                 = GroupName + "/max-scale"
	InitialScaleAnnotationKey             = GroupName + "/initial-scale"
	ActivationScaleKey                    = GroupName + "/activation-scale"
	ScaleDownDelayAnnotationKey           = GroupName + "/scale-down-delay"
	MetricAnnotationKey                   = GroupName + "/metric"
	TargetAnnotationKey                   = GroupName + "/target"
	ScaleToZeroPodRetentionPeriodKey      = GroupName + "/scale-to-zero-pod-retention-period"
	MetricAggregationAlgorithmKey         = GroupName + "/metric-aggregation-algorithm"
	WindowAnnotationKey                   = GroupName + "/window"
	TargetUtilizationPercentageKey        = GroupName + "/target-utilization-percentage"
	TargetBurstCapacityKey                = GroupName + "/target-burst-capacity"
	PanicWindowPercentageAnnotationKey    = GroupName + "/panic-window-percentage"
	PanicThresholdPercentageAnnotationKey = GroupName + "/panic-threshold-percentage"
)

// Values of the class, metric and aggregation annotations.
const (
	// KPA is the Knative Pod Autoscaler class (the default).
	KPA = "kpa.autoscaling.knative.dev"
	// HPA is the Kubernetes Horizontal Pod Autoscaler class.
	HPA = "hpa.autoscaling.knative.dev"

	Concurrency = "concurrency"
	RPS         = "rps"
	CPU         = "cpu"
	Memory      = "memory"

	MetricAggregationAlgorithmLinear                 = "linear"
	MetricAggregationAlgorithmWeightedExponential    = "weighted-exponential"
	MetricAggregationAlgorithmWeightedExponentialAlt = "weightedExponential"
)

// Bounds Knative puts on the annotations.
const (
	WindowMin                   = 6 * time.Second
	WindowMax                   = time.Hour
	TargetMin                   = 0.01
	PanicWindowPercentageMin    = 1.0
	PanicWindowPercentageMax    = 100.0
	PanicThresholdPercentageMin = 110.0
	PanicThresholdPercentageMax = 1000.0
)

// Key is an annotation read under its canonical key first, then under older spellings.
type Key []string

// Get returns the first spelling present with its value; when none is, the canonical key.
func (k Key) Get(m map[string]string) (key, value string, ok bool) {
	for _, s := range k {
		if v, found := m[s]; found {
			return s, v, true
		}
	}
	return k[0], "", false
}

// The annotations with every spelling Knative reads.
var (
	ClassAnnotation                         = Key{ClassAnnotationKey}
	MinScaleAnnotation                      = Key{MinScaleAnnotationKey, GroupName + "/minScale"}
	MaxScaleAnnotation                      = Key{MaxScaleAnnotationKey, GroupName + "/maxScale"}
	InitialScaleAnnotation                  = Key{InitialScaleAnnotationKey, GroupName + "/initialScale"}
	ActivationScale                         = Key{ActivationScaleKey}
	MetricAnnotation                        = Key{MetricAnnotationKey}
	MetricAggregationAlgorithmAnnotation    = Key{MetricAggregationAlgorithmKey, GroupName + "/metricAggregationAlgorithm"}
	PanicThresholdPercentageAnnotation      = Key{PanicThresholdPercentageAnnotationKey, GroupName + "/panicThresholdPercentage"}
	PanicWindowPercentageAnnotation         = Key{PanicWindowPercentageAnnotationKey, GroupName + "/panicWindowPercentage"}
	ScaleDownDelayAnnotation                = Key{ScaleDownDelayAnnotationKey, GroupName + "/scaleDownDelay"}
	ScaleToZeroPodRetentionPeriodAnnotation = Key{ScaleToZeroPodRetentionPeriodKey, GroupName + "/scaleToZeroPodRetentionPeriod"}
	TargetAnnotation                        = Key{TargetAnnotationKey}
	TargetBurstCapacityAnnotation           = Key{TargetBurstCapacityKey, GroupName + "/targetBurstCapacity"}
	TargetUtilizationPercentageAnnotation   = Key{TargetUtilizationPercentageKey, GroupName + "/targetUtilizationPercentage"}
	WindowAnnotation                        = Key{WindowAnnotationKey}
)
