package deployruntime

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// Knative accepts probes with no port (the user port); the Deployment's pod spec gets the
// container's port there, or the API server refuses it.
func TestDeploymentProbesWithoutPortGetTheUserPort(t *testing.T) {
	rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: "fn-00001", Namespace: "default"}}
	rev.Spec.Containers = []corev1.Container{{
		Name: "user", Image: "example.com/fn@sha256:abc",
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health/readiness", Port: intstr.FromInt32(0)}}},
		LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}},
		StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(9000)}}},
	}}
	d, err := deploymentFor(rev, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if got := c.ReadinessProbe.HTTPGet.Port; got != intstr.FromInt32(8080) {
		t.Errorf("readiness probe port = %v, want the user port 8080", got.String())
	}
	if got := c.LivenessProbe.TCPSocket.Port; got != intstr.FromInt32(8080) {
		t.Errorf("liveness probe port = %v, want the user port 8080", got.String())
	}
	if got := c.StartupProbe.HTTPGet.Port; got != intstr.FromInt32(9000) {
		t.Errorf("startup probe port = %v, want the 9000 it names", got.String())
	}
	if p := rev.Spec.Containers[0].ReadinessProbe.HTTPGet.Port; p != intstr.FromInt32(0) {
		t.Errorf("the Revision's own probe was changed to %v", p.String())
	}
}

// A Deployment of the revision's name that another object controls is reported, in the
// runtime's words, and never rewritten or rescaled.
func TestScaleLeavesAForeignDeployment(t *testing.T) {
	rev := hpaRevision(nil)
	yes := true
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: DeploymentName(rev.Name), Namespace: rev.Namespace, Labels: map[string]string{servingv1.RevisionLabel: rev.Name},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "someone", UID: "other", Controller: &yes}},
	}, Spec: appsv1.DeploymentSpec{Replicas: int32p(1)}}
	client := fake.NewClientset(foreign)
	ctx, r := startRuntime(t, client)
	client.ClearActions()
	err := r.Scale(ctx, rev, 3)
	if want := "deployment test-namespace/test-name-deployment exists and is not owned by revision test-name"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	for _, a := range client.Actions() {
		if a.GetResource().Resource == "deployments" && a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("foreign deployment: unexpected %s %s", a.GetVerb(), a.GetSubresource())
		}
	}
}

// startRuntime starts a Runtime over client, its informers synced; it stops when the test ends.
func startRuntime(t *testing.T, client kubernetes.Interface) (context.Context, *Runtime) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := New(Config{Client: client})
	t.Cleanup(func() {
		cancel() // the informers stop with ctx; Shutdown waits for them
		r.Shutdown()
	})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx, r
}
