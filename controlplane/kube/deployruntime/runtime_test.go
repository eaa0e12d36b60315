package deployruntime

import (
	"context"
	"maps"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/kube/deployments"
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

// Knative's makeLabels, deploymentAnnotations and podAnnotations
// (pkg/reconciler/revision/resources/meta.go, meta_test.go): the pods carry the Revision's
// labels but its routing state, its name and UID, app unless set, and its annotations but
// the labeler's, the garbage collector's and the autoscaling ones; so the labeler moving a
// Revision between active and reserve does not roll its pods.
func TestDeploymentMetadataAsKnative(t *testing.T) {
	rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{
		Name: "hello-00001", Namespace: "default", UID: "rev-uid",
		Labels: map[string]string{"team": "a", servingv1.ConfigurationLabel: "hello", servingv1.RoutingStateLabel: "active"},
		Annotations: map[string]string{"note": "kept", servingv1.RoutesAnnotation: "hello",
			servingv1.RoutingStateModifiedAnnotation: "2026-01-01T00:00:00Z", "autoscaling.knative.dev/min-scale": "1",
			servingv1.GroupName + "/no-gc": "true"},
	}}
	rev.Spec.Containers = []corev1.Container{{Name: "user-container", Image: "example.com/hello@sha256:abc"}}
	d, err := deploymentFor(rev, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"team": "a", servingv1.ConfigurationLabel: "hello", servingv1.RevisionLabel: "hello-00001",
		servingv1.RevisionUIDLabel: "rev-uid", "app": "hello-00001"}
	for _, got := range []map[string]string{d.Labels, d.Spec.Template.Labels} {
		if len(got) != len(wantLabels) {
			t.Errorf("labels %v, want %v", got, wantLabels)
		}
		for k, v := range wantLabels {
			if got[k] != v {
				t.Errorf("label %s = %q, want %q", k, got[k], v)
			}
		}
	}
	pod := d.Spec.Template.Annotations
	if len(pod) != 2 || pod["note"] != "kept" || pod["kubectl.kubernetes.io/default-container"] != "user-container" {
		t.Errorf("pod annotations %v, want note and the default container only", pod)
	}
	if d.Annotations["note"] != "kept" || d.Annotations[servingv1.RoutesAnnotation] != "" {
		t.Errorf("deployment annotations %v", d.Annotations)
	}

	// The labeler moves the Revision to reserve: the pod template is the same.
	rev.Labels[servingv1.RoutingStateLabel] = "reserve"
	delete(rev.Annotations, servingv1.RoutesAnnotation)
	rev.Annotations[servingv1.RoutingStateModifiedAnnotation] = "2026-01-02T00:00:00Z"
	d2, err := deploymentFor(rev, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Annotations[deployments.TemplateHashAnnotation] != d.Annotations[deployments.TemplateHashAnnotation] {
		t.Errorf("the template hash changed with the routing state: pods would roll")
	}
	// A template's own app label is kept.
	rev.Labels["app"] = "shop"
	if d3, _ := deploymentFor(rev, 1); d3.Spec.Template.Labels["app"] != "shop" {
		t.Errorf("app label %q, want the template's shop", d3.Spec.Template.Labels["app"])
	}
}

// Ported from Knative's pkg/reconciler/revision/resources/meta_test.go: TestMakeLabels (the
// selector apart: Skiff's stays on the Revision's name), TestMakeAnnotations (the Deployment's
// and the pods' cases) and TestMakeAnnotationsForPod.
func TestKnativeMetaCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   map[string]string
	}{
		{"no user labels", nil, map[string]string{servingv1.RevisionLabel: "bar", servingv1.RevisionUIDLabel: "1234", "app": "bar"}},
		{"propagate user labels", map[string]string{"ooga": "booga", "unicorn": "rainbows"},
			map[string]string{servingv1.RevisionLabel: "bar", servingv1.RevisionUIDLabel: "1234", "app": "bar", "ooga": "booga", "unicorn": "rainbows"}},
		{"override app label key", map[string]string{"app": "my-app-override"},
			map[string]string{servingv1.RevisionLabel: "bar", servingv1.RevisionUIDLabel: "1234", "app": "my-app-override"}},
	} {
		rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Namespace: "foo", Name: "bar", UID: "1234", Labels: tc.labels}}
		if got := labelsFor(rev); !maps.Equal(got, tc.want) {
			t.Errorf("%s: labels %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want map[string]string
	}{
		{"no user annotations", map[string]string{}, map[string]string{}},
		{"excluded annotations", map[string]string{servingv1.RoutingStateModifiedAnnotation: "exclude me", "keep": "keep me"}, map[string]string{"keep": "keep me"}},
		{"exclude autoscaling annotations", map[string]string{"autoscaling.knative.dev/min-scale": "1", "keep": "keep me"}, map[string]string{"keep": "keep me"}},
	} {
		rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Namespace: "foo", Name: "bar", Annotations: tc.ann}}
		for fn, got := range map[string]map[string]string{"deploymentAnnotations": deploymentAnnotations(rev), "podAnnotations": podAnnotations(rev)} {
			if !maps.Equal(got, tc.want) {
				t.Errorf("%s %s: %v, want %v", tc.name, fn, got, tc.want)
			}
		}
	}
	rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"asdf": "fdsa"}}}
	rev.Spec.Containers = []corev1.Container{{Name: "foo"}, {Name: "bar", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}
	if got, want := podAnnotations(rev), map[string]string{"asdf": "fdsa", "kubectl.kubernetes.io/default-container": "bar"}; !maps.Equal(got, want) {
		t.Errorf("multiple containers single port with base annotation: %v, want %v", got, want)
	}
}

// A revision reconciled again before the informers deliver what its first reconcile created
// (its headless Service's event comes before its Deployment's) creates nothing twice: each
// create the API server refuses as AlreadyExists costs it as much as a write.
func TestScaleBeforeTheCacheCatchesUpCreatesOnce(t *testing.T) {
	rev := hpaRevision(nil)
	client := fake.NewClientset()
	r := New(Config{Client: client}) // informers not started: the caches never catch up
	ctx := context.Background()
	for range 3 {
		if err := r.Scale(ctx, rev, 1); err != nil {
			t.Fatal(err)
		}
	}
	creates := map[string]int{}
	for _, a := range client.Actions() {
		if a.GetVerb() == "create" {
			creates[a.GetResource().Resource]++
		}
	}
	if want := map[string]int{"deployments": 1, "services": 1}; !maps.Equal(creates, want) {
		t.Errorf("creates = %v, want %v", creates, want)
	}
	// Scaled again before the cache has it: through the scale subresource, once (which the
	// fake clientset does not serve).
	client.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return a.GetSubresource() == "scale", &autoscalingv1.Scale{}, nil
	})
	client.ClearActions()
	if err := r.Scale(ctx, rev, 2); err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, a := range client.Actions() {
		verbs = append(verbs, a.GetVerb()+" "+a.GetResource().Resource+"/"+a.GetSubresource())
	}
	if want := []string{"update deployments/scale"}; !slices.Equal(verbs, want) {
		t.Errorf("writes = %v, want %v", verbs, want)
	}
	// Once the informer delivers it, the cache answers.
	r.unseenDeps.seen(&metav1.ObjectMeta{Namespace: rev.Namespace, Name: DeploymentName(rev.Name)})
	if len(r.unseenDeps.objs) != 0 {
		t.Errorf("unseen deployments after the informer delivered: %v", r.unseenDeps.objs)
	}
}
