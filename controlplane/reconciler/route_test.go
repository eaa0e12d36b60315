package reconciler

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/internal/testwait"
)

// TestRouteToRevisionNotYetCreated: Knative accepts traffic naming a revision that does not
// exist yet (its tag-header-routing sample does) and reports it on the Route until it exists:
// AllTrafficAssigned=False, reason RevisionMissing (route_lifecycle.go MarkMissingTrafficTarget).
func TestRouteToRevisionNotYetCreated(t *testing.T) {
	st, _ := startController(t, 2)
	ctx := context.Background()
	route := &servingv1.Route{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRoute},
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"},
		Spec:       servingv1.RouteSpec{Traffic: []servingv1.TrafficTarget{{RevisionName: "later-00001", Percent: ptr[int64](100)}}},
	}
	if errs := api.Errors(api.Admit(ctx, route, nil)); errs != nil {
		t.Fatalf("Knative accepts a route to a revision that does not exist yet; Skiff refused: %v", errs)
	}
	if err := st.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, st, route, duck.False, "RevisionMissing", `Revision "later-00001" referenced in traffic not found.`)

	rev := &servingv1.Revision{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRevision},
		ObjectMeta: metav1.ObjectMeta{Name: "later-00001", Namespace: "default"},
		Spec:       servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "ko://example.com/app"}}}},
	}
	if errs := api.Errors(api.Admit(ctx, rev, nil)); errs != nil {
		t.Fatal(errs)
	}
	if err := st.Create(ctx, rev); err != nil {
		t.Fatal(err)
	}
	// The revision exists now (it never becomes ready: nothing runs it here).
	waitCondition(t, st, route, duck.Unknown, "RevisionMissing", `Revision "later-00001" is not yet ready.`)
}

func waitCondition(t *testing.T, st *store.Store, route *servingv1.Route, status duck.ConditionStatus, reason, message string) {
	t.Helper()
	var got servingv1.Route
	testwait.For(t, 10*time.Second, fmt.Sprintf("route AllTrafficAssigned=%s %s %q", status, reason, message), func() bool {
		if err := st.Get(context.Background(), store.KeyOf(route), &got); err != nil {
			return false
		}
		c := got.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned)
		return c != nil && c.Status == status && c.Reason == reason && c.Message == message
	})
	if r := got.Status.GetCondition(duck.ConditionReady); r == nil || r.Status != status {
		t.Fatalf("Ready %+v, want %s with AllTrafficAssigned", r, status)
	}
}
