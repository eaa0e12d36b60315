package sourcedeploy

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// Cases from Knative's containersource/resources/deployment_test.go TestMakeDeployment:
// the name, Knative's labels (which also select the pods), the template's own labels kept,
// the controller owner reference and the containers as given.
func TestMakeDeployment(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tmplLabels map[string]string
		want       map[string]string
	}{
		{"valid container source with one container", nil,
			map[string]string{SourceLabel: SourceLabelValue, ContainerSourceLabel: "test-name"}},
		{"valid container source with one container, labels are respected", map[string]string{"example": "value"},
			map[string]string{SourceLabel: SourceLabelValue, ContainerSourceLabel: "test-name", "example": "value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &sourcesv1.ContainerSource{ObjectMeta: metav1.ObjectMeta{Name: "test-name", Namespace: "test-namespace", UID: "uid"}}
			tmpl := corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tc.tmplLabels},
				Spec: corev1.PodSpec{ServiceAccountName: "test-service-account", Containers: []corev1.Container{
					{Name: "test-source", Image: "test-image", Args: []string{"--test1=args1"}, Env: []corev1.EnvVar{{Name: "K_SINK", Value: "http://sink"}}},
					{Name: "second", Image: "test-image2"},
				}},
			}
			d, err := MakeDeployment(src, tmpl)
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != "test-name-deployment" || d.Namespace != "test-namespace" {
				t.Errorf("deployment %s/%s", d.Namespace, d.Name)
			}
			for _, got := range []map[string]string{d.Labels, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels} {
				if len(got) != len(tc.want) {
					t.Errorf("labels %v, want %v", got, tc.want)
				}
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("labels %v, want %v", got, tc.want)
					}
				}
			}
			if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].Kind != "ContainerSource" || d.OwnerReferences[0].UID != "uid" ||
				d.OwnerReferences[0].Controller == nil || !*d.OwnerReferences[0].Controller {
				t.Errorf("owner %+v", d.OwnerReferences)
			}
			if c := d.Spec.Template.Spec; len(c.Containers) != 2 || c.ServiceAccountName != "test-service-account" || c.Containers[0].Env[0].Value != "http://sink" {
				t.Errorf("pod spec %+v", c)
			}
			if tmpl.Labels != nil && len(tmpl.Labels) != len(tc.tmplLabels) {
				t.Errorf("the caller's template was changed: %v", tmpl.Labels)
			}
		})
	}
}

// A Deployment of the source's name that another object controls is reported in Knative's
// words (containersource.go reconcileReceiveAdapter) and never rewritten.
func TestApplyLeavesAForeignDeployment(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &sourcesv1.ContainerSource{ObjectMeta: metav1.ObjectMeta{Name: "test-name", Namespace: "test-namespace", UID: "uid"}}
	yes := true
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: DeploymentName(src.Name), Namespace: src.Namespace, Labels: map[string]string{SourceLabel: SourceLabelValue},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "someone", UID: "other", Controller: &yes}},
	}}
	client := fake.NewClientset(foreign)
	d := New(Config{Client: client})
	defer func() {
		cancel() // the informer stops with ctx; Shutdown waits for it
		d.Shutdown()
	}()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	err := d.Apply(ctx, src, corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}})
	if want := `deployment "test-name-deployment" is not owned by ContainerSource "test-name"`; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	for _, a := range client.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			t.Errorf("foreign deployment: unexpected %s", v)
		}
	}
}
