package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/internal/testwait"
)

// zeroScaler is an autoscaler whose every decision is zero pods.
type zeroScaler struct{}

func (zeroScaler) Upsert(string, autoscaler.Spec) {}
func (zeroScaler) Delete(string)                  {}
func (zeroScaler) SetReady(string, int)           {}
func (zeroScaler) Decision(string) (autoscaler.Decision, bool) {
	return autoscaler.Decision{ProxyMode: true}, true
}

// TestRevisionAtZeroInitialScale: a revision whose initial-scale and min-scale are 0 is
// Ready with no pod, as Knative's KPA marks its scale target initialized when
// max(min-scale, initial-scale) pods are ready (kpa.go activeThreshold,
// computeActiveCondition) and the revision then propagates ResourcesAvailable and
// ContainerHealthy True (revision_lifecycle.go PropagateAutoscalerStatus; the
// "initial scale zero" cases of kpa_test.go TestReconcile). A revision that should start
// with a pod but has none is still Deploying.
func TestRevisionAtZeroInitialScale(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defaults := autoscaler.DefaultConfig()
	defaults.AllowZeroInitialScale = true
	ctrl := New(Config{Store: st, Runtime: nopRuntime{}, Proxy: nopProxy{}, Autoscaler: zeroScaler{},
		AutoscalerDefaults: defaults, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	})

	for _, tc := range []struct {
		name        string
		annotations map[string]string
		want        duck.ConditionStatus
		reason      string
	}{
		{"zero", map[string]string{InitialScaleAnnotation: "0"}, duck.True, ""},
		{"zero-min-one", map[string]string{InitialScaleAnnotation: "0", MinScaleAnnotation: "1"}, duck.Unknown, "Deploying"},
		{"default", nil, duck.Unknown, "Deploying"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := &servingv1.Revision{
				TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRevision},
				ObjectMeta: metav1.ObjectMeta{Name: tc.name + "-00001", Namespace: "default", Annotations: tc.annotations},
				Spec:       servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "ko://example.com/app"}}}},
			}
			if err := st.Create(ctx, rev); err != nil {
				t.Fatal(err)
			}
			var got servingv1.Revision
			testwait.For(t, 10*time.Second, fmt.Sprintf("revision ResourcesAvailable=%s %s", tc.want, tc.reason), func() bool {
				if err := st.Get(ctx, store.KeyOf(rev), &got); err != nil {
					return false
				}
				c := got.Status.GetCondition(servingv1.RevisionConditionResourcesAvailable)
				return c != nil && c.Status == tc.want && c.Reason == tc.reason
			})
			for _, typ := range []duck.ConditionType{servingv1.RevisionConditionContainerHealthy, duck.ConditionReady} {
				if c := got.Status.GetCondition(typ); c == nil || c.Status != tc.want {
					t.Errorf("%s = %+v, want %s", typ, c, tc.want)
				}
			}
			if c := got.Status.GetCondition(servingv1.RevisionConditionActive); c == nil || c.Status != duck.False || c.Reason != "NoTraffic" {
				t.Errorf("Active = %+v, want False NoTraffic", c)
			}
			if got.Status.ActualReplicas == nil || *got.Status.ActualReplicas != 0 {
				t.Errorf("actualReplicas %v, want 0", got.Status.ActualReplicas)
			}
		})
	}
}
