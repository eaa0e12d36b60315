package deployruntime

import (
	"math"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

func hpaRevision(anns map[string]string) *servingv1.Revision {
	return &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{
			Name: "test-name", Namespace: "test-namespace", UID: "2006",
			Labels:      map[string]string{servingv1.ConfigurationLabel: "cfg", servingv1.ServiceLabel: "svc"},
			Annotations: anns,
		},
		Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "example.com/app"}}}},
	}
}

func int32p(n int32) *int32 { return &n }

// TestHPAFor ports knative/serving pkg/reconciler/autoscaling/hpa/resources/hpa_test.go
// TestMakeHPA: the spec of the HorizontalPodAutoscaler for each combination of annotations.
func TestHPAFor(t *testing.T) {
	cpu := func(util int32) []autoscalingv2.MetricSpec {
		return []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: int32p(util)}},
		}}
	}
	for _, tc := range []struct {
		name        string
		hpa         runtime.HPA
		wantMin     *int32
		wantMax     int32
		wantMetrics []autoscalingv2.MetricSpec
		wantWindow  *int32
	}{
		{name: "defaults", hpa: runtime.HPA{Metric: "cpu"}, wantMax: math.MaxInt32},
		{name: "with lower bound", hpa: runtime.HPA{Metric: "cpu", MinReplicas: 5}, wantMin: int32p(5), wantMax: math.MaxInt32},
		{name: "with upper bound", hpa: runtime.HPA{Metric: "cpu", MaxReplicas: 5}, wantMax: 5},
		{name: "with an actual cpu target", hpa: runtime.HPA{Metric: "cpu", Target: 50}, wantMax: math.MaxInt32, wantMetrics: cpu(50)},
		{name: "with an actual memory target", hpa: runtime.HPA{Metric: "memory", Target: 50}, wantMax: math.MaxInt32,
			wantMetrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType,
						AverageValue: resource.NewQuantity(50*1024*1024, resource.BinarySI)}},
			}}},
		{name: "with an actual fractional target", hpa: runtime.HPA{Metric: "cpu", Target: 1982.4}, wantMax: math.MaxInt32, wantMetrics: cpu(1983)},
		{name: "with window annotation", hpa: runtime.HPA{Metric: "cpu", Target: 50, Window: time.Minute}, wantMax: math.MaxInt32,
			wantMetrics: cpu(50), wantWindow: int32p(60)},
		{name: "with custom metric", hpa: runtime.HPA{Metric: "customMetric", Target: 50}, wantMax: math.MaxInt32,
			wantMetrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "customMetric"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType,
						AverageValue: resource.NewQuantity(50, resource.DecimalSI)}},
			}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := hpaRevision(map[string]string{"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"})
			got := HPAFor(rev, &tc.hpa)
			want := autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "test-name-deployment"},
				MinReplicas:    tc.wantMin, MaxReplicas: tc.wantMax, Metrics: tc.wantMetrics,
			}
			if tc.wantWindow != nil {
				want.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{
					ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: tc.wantWindow},
					ScaleUp:   &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: tc.wantWindow},
				}
			}
			if !equality.Semantic.DeepEqual(want, got.Spec) {
				t.Fatalf("spec:\n got %+v\nwant %+v", got.Spec, want)
			}
			if got.Name != "test-name" || got.Namespace != "test-namespace" || !metav1.IsControlledBy(got, rev) ||
				got.Annotations["autoscaling.knative.dev/class"] != "hpa.autoscaling.knative.dev" || got.Labels[servingv1.RevisionLabel] != "test-name" {
				t.Fatalf("metadata %+v: want the revision's name, labels and annotations, owned by it", got.ObjectMeta)
			}
		})
	}
}

// ScaleExternally creates the Deployment at its initial scale and the HPA, never rescales the
// Deployment (the HPA does), updates the HPA only when its spec changes, and Scale (the class
// back to KPA) removes it.
func TestScaleExternally(t *testing.T) {
	client := fake.NewClientset()
	ctx, r := startRuntime(t, client)
	rev := hpaRevision(map[string]string{"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"})
	hpa := &runtime.HPA{Metric: "cpu", Target: 50, MaxReplicas: 4}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := r.ScaleExternally(ctx, rev, 2, hpa); err != nil {
		t.Fatal(err)
	}
	dep, err := client.AppsV1().Deployments("test-namespace").Get(ctx, "test-name-deployment", metav1.GetOptions{})
	if err != nil || *dep.Spec.Replicas != 2 {
		t.Fatalf("deployment: %v %v, want created with the initial scale 2", dep, err)
	}
	got, err := client.AutoscalingV2().HorizontalPodAutoscalers("test-namespace").Get(ctx, "test-name", metav1.GetOptions{})
	if err != nil || got.Spec.MaxReplicas != 4 || !metav1.IsControlledBy(got, rev) {
		t.Fatalf("hpa: %+v %v", got, err)
	}
	waitFor("the informers to see both", func() bool {
		_, d, _ := r.deps.GetIndexer().GetByKey("test-namespace/test-name-deployment")
		_, h, _ := r.hpas.GetIndexer().GetByKey("test-namespace/test-name")
		return d && h
	})

	// The HPA scales the Deployment; another reconcile neither rescales it nor rewrites the HPA.
	dep.Spec.Replicas = int32p(3)
	if _, err := client.AppsV1().Deployments("test-namespace").Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the informer to see 3 replicas", func() bool {
		it, _, _ := r.deps.GetIndexer().GetByKey("test-namespace/test-name-deployment")
		d, ok := it.(*appsv1.Deployment)
		return ok && d.Spec.Replicas != nil && *d.Spec.Replicas == 3
	})
	client.ClearActions()
	if err := r.ScaleExternally(ctx, rev, 2, hpa); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("unchanged revision: unexpected %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	// A changed target updates the HPA.
	if err := r.ScaleExternally(ctx, rev, 2, &runtime.HPA{Metric: "cpu", Target: 70, MaxReplicas: 4}); err != nil {
		t.Fatal(err)
	}
	got, _ = client.AutoscalingV2().HorizontalPodAutoscalers("test-namespace").Get(ctx, "test-name", metav1.GetOptions{})
	if u := got.Spec.Metrics[0].Resource.Target.AverageUtilization; u == nil || *u != 70 {
		t.Fatalf("updated hpa target = %v, want 70", u)
	}
	waitFor("the informer to see the updated HPA", func() bool {
		it, _, _ := r.hpas.GetIndexer().GetByKey("test-namespace/test-name")
		return it != nil && *it.(*autoscalingv2.HorizontalPodAutoscaler).Spec.Metrics[0].Resource.Target.AverageUtilization == 70
	})
	// Back to KPA: Skiff scales the Deployment (at its current 3: the fake clientset has no
	// scale subresource) and the HPA goes.
	if err := r.Scale(ctx, rev, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AutoscalingV2().HorizontalPodAutoscalers("test-namespace").Get(ctx, "test-name", metav1.GetOptions{}); err == nil {
		t.Fatal("the HPA remains after the revision went back to KPA")
	}
}
