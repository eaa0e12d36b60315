package deployruntime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// HPASpecHashAnnotation records the hash of the HPA spec the runtime last wrote: the API
// server defaults fields of a stored HPA (its metric, minReplicas), so comparing specs would
// rewrite it on every reconcile.
const HPASpecHashAnnotation = "skiff.dev/hpa-spec-hash"

// Knative's metric names for the hpa class.
const (
	metricCPU    = "cpu"
	metricMemory = "memory"
)

// HPAFor is the HorizontalPodAutoscaler for an hpa-class revision, built as Knative's
// MakeHPA (pkg/reconciler/autoscaling/hpa/resources/hpa.go) builds it from the revision's
// PodAutoscaler: named after the revision, with its labels and annotations, owned by it
// (Knative's is owned by the PodAutoscaler, which the Revision owns), scaling its Deployment
// between min-scale (unset when 0) and max-scale (unbounded when 0), on the metric annotation
// with the target annotation (no metric without a target: Kubernetes then uses 80% CPU), and
// with the window annotation as both stabilization windows.
func HPAFor(rev *servingv1.Revision, h *runtime.HPA) *autoscalingv2.HorizontalPodAutoscaler {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{
			Name: rev.Name, Namespace: rev.Namespace,
			Labels:          labelsFor(rev),
			Annotations:     maps.Clone(rev.Annotations),
			OwnerReferences: []metav1.OwnerReference{ownerRef(rev)},
		},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: "apps/v1", Kind: "Deployment", Name: DeploymentName(rev.Name),
			},
			MaxReplicas: math.MaxInt32,
		},
	}
	if h.MaxReplicas > 0 {
		hpa.Spec.MaxReplicas = h.MaxReplicas
	}
	if h.MinReplicas > 0 {
		lo := h.MinReplicas
		hpa.Spec.MinReplicas = &lo
	}
	if h.Target > 0 {
		switch h.Metric {
		case metricCPU:
			util := int32(math.Ceil(h.Target))
			hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &util},
				},
			}}
		case metricMemory:
			hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{
						Type:         autoscalingv2.AverageValueMetricType,
						AverageValue: resource.NewQuantity(int64(h.Target)*1024*1024, resource.BinarySI),
					},
				},
			}}
		default:
			hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: h.Metric},
					Target: autoscalingv2.MetricTarget{
						Type:         autoscalingv2.AverageValueMetricType,
						AverageValue: resource.NewQuantity(int64(h.Target), resource.DecimalSI),
					},
				},
			}}
		}
	}
	if h.Window > 0 {
		secs := int32(h.Window.Seconds())
		hpa.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &secs},
			ScaleUp:   &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &secs},
		}
	}
	return hpa
}

// ensureHPA makes the revision's HPA match want; nil removes the one this runtime made.
func (r *Runtime) ensureHPA(ctx context.Context, rev *servingv1.Revision, want *runtime.HPA) error {
	api := r.cfg.Client.AutoscalingV2().HorizontalPodAutoscalers(rev.Namespace)
	item, exists, err := r.hpas.GetIndexer().GetByKey(rev.Namespace + "/" + rev.Name)
	if err != nil {
		return fmt.Errorf("read hpa %s/%s: %w", rev.Namespace, rev.Name, err)
	}
	var have *autoscalingv2.HorizontalPodAutoscaler
	if exists {
		have = item.(*autoscalingv2.HorizontalPodAutoscaler)
	}
	if want == nil {
		if have == nil || !metav1.IsControlledBy(have, rev) {
			return nil
		}
		if err := api.Delete(ctx, have.Name, metav1.DeleteOptions{}); err != nil && !kerrors.IsNotFound(err) {
			return fmt.Errorf("delete hpa %s/%s: %w", rev.Namespace, have.Name, err)
		}
		return nil
	}
	desired := HPAFor(rev, want)
	raw, err := json.Marshal(desired.Spec)
	if err != nil {
		return fmt.Errorf("revision %s/%s: encode hpa spec: %w", rev.Namespace, rev.Name, err)
	}
	sum := sha256.Sum256(raw)
	if desired.Annotations == nil {
		desired.Annotations = map[string]string{}
	}
	desired.Annotations[HPASpecHashAnnotation] = hex.EncodeToString(sum[:8])
	switch {
	case have == nil:
		if _, err := api.Create(ctx, desired, metav1.CreateOptions{}); err != nil && !kerrors.IsAlreadyExists(err) {
			return fmt.Errorf("create hpa %s/%s: %w", rev.Namespace, desired.Name, err)
		}
	case !metav1.IsControlledBy(have, rev):
		return fmt.Errorf("hpa %s/%s exists and is not owned by revision %s", rev.Namespace, have.Name, rev.Name)
	case have.Annotations[HPASpecHashAnnotation] != desired.Annotations[HPASpecHashAnnotation]:
		next := have.DeepCopy()
		next.Spec, next.Labels, next.Annotations = desired.Spec, desired.Labels, desired.Annotations
		if _, err := api.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update hpa %s/%s: %w", rev.Namespace, have.Name, err)
		}
	}
	return nil
}
