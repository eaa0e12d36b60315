package deployruntime

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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
