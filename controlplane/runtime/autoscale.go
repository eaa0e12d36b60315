package runtime

import (
	"context"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// ExternalScaler is implemented by runtimes on a platform that can scale a revision without
// Skiff: a revision of the hpa class (or of an external autoscaler's class) is handed to it
// instead of being scaled by Skiff's autoscaler. On Kubernetes this is a HorizontalPodAutoscaler
// (hpa class), or nothing at all for another class, whose own autoscaler acts on the
// Deployment's scale subresource.
type ExternalScaler interface {
	// ScaleExternally makes the revision's workload exist, created with initial replicas and
	// afterwards never rescaled by Skiff; hpa, when not nil, is the HorizontalPodAutoscaler to
	// keep for it (nil: none, and one Skiff made earlier is removed).
	ScaleExternally(ctx context.Context, rev *servingv1.Revision, initial int, hpa *HPA) error
}

// HPA is the HorizontalPodAutoscaler Knative makes for an hpa-class revision
// (pkg/reconciler/autoscaling/hpa/resources MakeHPA).
type HPA struct {
	// Metric is the autoscaling.knative.dev/metric annotation: "cpu" (the default), "memory",
	// or a custom per-pod metric's name.
	Metric string
	// Target is the autoscaling.knative.dev/target annotation; 0 when absent, in which case
	// the HPA gets no metric and Kubernetes applies its default (80% CPU).
	Target float64
	// MinReplicas is min-scale; 0 leaves it unset (Kubernetes' default, 1).
	MinReplicas int32
	// MaxReplicas is max-scale; 0 means unbounded (the largest int32).
	MaxReplicas int32
	// Window is the autoscaling.knative.dev/window annotation, the HPA's scale-up and
	// scale-down stabilization windows; 0 when absent.
	Window time.Duration
}

// InstanceUsage is one instance's resource use, as a runtime measures it, for the hpa class in
// `skiff up`.
type InstanceUsage struct {
	// CPUSeconds is the CPU time the instance's processes have used since it started.
	CPUSeconds float64
	// CPURequest is the container's resources.requests.cpu in cores; 0 when none is set.
	CPURequest float64
	// MemoryBytes is the instance's resident memory now.
	MemoryBytes float64
}
