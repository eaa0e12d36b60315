package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// condition returns the status, reason and message of the object's condition typ.
func condition(u *unstructured.Unstructured, typ string) (status, reason, message string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, cd := range conds {
		m := cd.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return s, r, msg
		}
	}
	return "", "", ""
}

// badTraffic is issue 21's first defect: a Service whose traffic sums to 90 got into a
// cluster without Skiff's admission webhook (the controllers of these tests run none) and
// must say so on its status, naming the field, as must a Route of its own summing to 150. A
// percent outside 0..100 is refused by the CRD's schema itself. create writes them (at
// once, with the schema check); check waits for their status. TestKnativeSampleOnKubernetes
// runs it beside the sample, so that it costs no cluster of its own.
type badTraffic struct{ c *cluster }

func (b badTraffic) create(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	svc := decodeObjects(t, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: split90, namespace: default}
spec:
  template:
    spec:
      containers: [{image: example.com/app}]
  traffic:
    - latestRevision: true
      percent: 50
    - revisionName: split90-00001
      percent: 40
`))[0]
	if _, err := b.c.dyn.Resource(servicesGVR).Namespace("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the Service (no webhook: the API server takes it): %v", err)
	}
	if _, err := b.c.dyn.Resource(routesGVR).Namespace("default").Create(ctx, decodeObjects(t, []byte(route150))[0], metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the Route: %v", err)
	}
	// The CRD's schema bounds each percent (a Skiff addition: Knative's CRDs do not).
	bad := decodeObjects(t, []byte(strings.ReplaceAll(route150, "percent: 50", "percent: 101")))[0]
	bad.SetName("percent101")
	_, err := b.c.dyn.Resource(routesGVR).Namespace("default").Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.traffic[1].percent") {
		t.Errorf("percent 101: %v, want Invalid naming spec.traffic[1].percent", err)
	}
}

func (b badTraffic) check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	const want90 = "Traffic targets sum to 90, want 100: spec.traffic"
	eventually(t, 30*time.Second, "Service split90 RoutesReady=False naming spec.traffic", func() bool {
		u, err := b.c.dyn.Resource(servicesGVR).Namespace("default").Get(ctx, "split90", metav1.GetOptions{})
		if err != nil {
			return false
		}
		rs, rr, rm := condition(u, "RoutesReady")
		s, r, m := condition(u, "Ready")
		return rs == "False" && rr == "InvalidSpec" && rm == want90 && s == "False" && r == "InvalidSpec" && m == want90
	})
	if _, err := b.c.dyn.Resource(routesGVR).Namespace("default").Get(ctx, "split90", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Service's invalid traffic was written to its Route (get: %v)", err)
	}
	const want150 = "Traffic targets sum to 150, want 100: spec.traffic"
	eventually(t, 30*time.Second, "Route split150 AllTrafficAssigned=False naming spec.traffic", func() bool {
		u, err := b.c.dyn.Resource(routesGVR).Namespace("default").Get(ctx, "split150", metav1.GetOptions{})
		if err != nil {
			return false
		}
		as, ar, am := condition(u, "AllTrafficAssigned")
		s, _, _ := condition(u, "Ready")
		return as == "False" && ar == "InvalidSpec" && am == want150 && s == "False"
	})
}

// route150 is a Route of its own whose traffic sums to 150.
const route150 = `apiVersion: serving.knative.dev/v1
kind: Route
metadata: {name: split150, namespace: default}
spec:
  traffic:
    - configurationName: split90
      percent: 100
    - revisionName: split90-00001
      percent: 50
`
