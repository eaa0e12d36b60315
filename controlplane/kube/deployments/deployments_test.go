package deployments

import (
	"context"
	"errors"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// deployment is the Deployment of image controlled by the object of uid ("" for none), its
// replicas and hash annotation as given.
func deployment(t *testing.T, uid types.UID, image string, replicas int32) *appsv1.Deployment {
	t.Helper()
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "fn"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "user", Image: image}}},
	}
	hash, err := TemplateHash(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: "fn-deployment", Namespace: "ns", Labels: map[string]string{"app": "fn"},
			Annotations: map[string]string{TemplateHashAnnotation: hash},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "fn"}},
			Template: tmpl,
		},
	}
	if uid != "" {
		yes := true
		d.OwnerReferences = []metav1.OwnerReference{{APIVersion: "serving.knative.dev/v1", Kind: "Revision", Name: "fn", UID: uid, Controller: &yes}}
	}
	return d
}

// Ensure creates a missing Deployment, leaves an up-to-date or foreign one alone, and updates
// one whose pod template changed with the template, the annotations and the caller's fields.
func TestEnsure(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stored is in the API server and, unless cacheBehind, in the cache.
		stored      *appsv1.Deployment
		cacheBehind bool
		createErr   error
		want        *appsv1.Deployment
		wantErr     func(error) bool // nil: no error
		wantChanged bool
		wantHave    bool
		wantVerbs   []string // writes the API server sees
		// what the API server holds afterwards (nil: nothing)
		wantImage    string
		wantReplicas int32
	}{{
		name: "missing: created, and returned as created", want: deployment(t, "uid", "v1", 2),
		wantChanged: true, wantHave: true, wantVerbs: []string{"create"}, wantImage: "v1", wantReplicas: 2,
	}, {
		name: "created since the cache was read: left for the next reconcile", stored: deployment(t, "uid", "v1", 1), cacheBehind: true,
		want:        deployment(t, "uid", "v2", 2),
		wantChanged: true, wantVerbs: []string{"create"}, wantImage: "v1", wantReplicas: 1,
	}, {
		name: "create refused", createErr: apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "fn-deployment", errors.New("no")),
		want: deployment(t, "uid", "v1", 2), wantErr: apierrors.IsForbidden, wantVerbs: []string{"create"},
	}, {
		name: "owned and up to date: untouched", stored: deployment(t, "uid", "v1", 5), want: deployment(t, "uid", "v1", 2),
		wantHave: true, wantImage: "v1", wantReplicas: 5,
	}, {
		name: "controlled by another object: untouched", stored: deployment(t, "other", "v1", 1), want: deployment(t, "uid", "v2", 2),
		wantErr: notControlled, wantHave: true, wantImage: "v1", wantReplicas: 1,
	}, {
		name: "no controller: untouched", stored: deployment(t, "", "v1", 1), want: deployment(t, "uid", "v2", 2),
		wantErr: notControlled, wantHave: true, wantImage: "v1", wantReplicas: 1,
	}, {
		name: "owned, template changed: updated", stored: deployment(t, "uid", "v1", 1), want: deployment(t, "uid", "v2", 2),
		wantChanged: true, wantHave: true, wantVerbs: []string{"update"}, wantImage: "v2", wantReplicas: 2,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []runtime.Object
			cached := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
			if tc.stored != nil {
				objs = append(objs, tc.stored)
				if !tc.cacheBehind {
					if err := cached.Add(tc.stored); err != nil {
						t.Fatal(err)
					}
				}
			}
			client := fake.NewClientset(objs...)
			if tc.createErr != nil {
				client.PrependReactor("create", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, tc.createErr
				})
			}
			// The caller's own update rule: here, the replicas too.
			updated := false
			have, changed, err := Ensure(context.Background(), client.AppsV1().Deployments("ns"), cached, tc.want, func(next, want *appsv1.Deployment) {
				updated = true
				next.Spec.Replicas = want.Spec.Replicas
			})
			if (tc.wantErr == nil && err != nil) || (tc.wantErr != nil && !tc.wantErr(err)) {
				t.Fatalf("err = %v", err)
			}
			if changed != tc.wantChanged || (have != nil) != tc.wantHave {
				t.Errorf("changed %v, have %v; want changed %v, have %v", changed, have != nil, tc.wantChanged, tc.wantHave)
			}
			if updated != slices.Equal(tc.wantVerbs, []string{"update"}) {
				t.Errorf("the caller's update ran: %v", updated)
			}
			var verbs []string
			for _, a := range client.Actions() {
				if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
					verbs = append(verbs, v)
				}
			}
			if !slices.Equal(verbs, tc.wantVerbs) {
				t.Errorf("writes %v, want %v", verbs, tc.wantVerbs)
			}
			got, err := client.AppsV1().Deployments("ns").Get(context.Background(), "fn-deployment", metav1.GetOptions{})
			if tc.wantImage == "" {
				if err == nil {
					t.Errorf("a deployment exists: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img := got.Spec.Template.Spec.Containers[0].Image; img != tc.wantImage || *got.Spec.Replicas != tc.wantReplicas {
				t.Errorf("stored image %s, replicas %d; want %s, %d", img, *got.Spec.Replicas, tc.wantImage, tc.wantReplicas)
			}
			hash, _ := TemplateHash(got.Spec.Template)
			if got.Annotations[TemplateHashAnnotation] != hash {
				t.Errorf("stored hash annotation %q, its template's hash %q", got.Annotations[TemplateHashAnnotation], hash)
			}
		})
	}
}

func notControlled(err error) bool { return errors.Is(err, ErrNotControlled) }

// An update keeps what the stored Deployment has that want does not say (its labels, its
// replicas when the caller does not copy them): Ensure writes only the template, the
// annotations and the caller's fields.
func TestEnsureUpdateKeepsOtherFields(t *testing.T) {
	stored := deployment(t, "uid", "v1", 3)
	stored.Labels["extra"] = "kept"
	cached := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := cached.Add(stored); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(stored.DeepCopy())
	want := deployment(t, "uid", "v2", 1)
	want.Annotations["new"] = "yes"
	if _, _, err := Ensure(context.Background(), client.AppsV1().Deployments("ns"), cached, want, nil); err != nil {
		t.Fatal(err)
	}
	got, err := client.AppsV1().Deployments("ns").Get(context.Background(), "fn-deployment", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Template.Spec.Containers[0].Image != "v2" || got.Annotations["new"] != "yes" {
		t.Errorf("template or annotations not written: %+v", got)
	}
	if *got.Spec.Replicas != 3 || got.Labels["extra"] != "kept" {
		t.Errorf("replicas %d, labels %v: want the stored 3 and its labels", *got.Spec.Replicas, got.Labels)
	}
	if stored.Spec.Template.Spec.Containers[0].Image != "v1" {
		t.Error("Ensure changed the cached object")
	}
}

// A Deployment with no controller to compare with is a caller's mistake, said before any write.
func TestEnsureWantsAController(t *testing.T) {
	client := fake.NewClientset()
	_, _, err := Ensure(context.Background(), client.AppsV1().Deployments("ns"), cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}),
		deployment(t, "", "v1", 1), nil)
	if err == nil || len(client.Actions()) != 0 {
		t.Fatalf("err %v, actions %v", err, client.Actions())
	}
}

// TemplateHash must not change between releases: a new hash for the same template would
// rewrite, and so roll, every Deployment on upgrade. The value pinned is the one Skiff's
// runtimes wrote before TemplateHash existed (sha256 of the template's JSON, first 8 bytes).
func TestTemplateHashIsStable(t *testing.T) {
	got, err := TemplateHash(corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "user", Image: "v1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got != "de109facd584611d" {
		t.Errorf("TemplateHash = %q", got)
	}
	other, _ := TemplateHash(corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "user", Image: "v2"}}}})
	if other == got {
		t.Error("two templates, one hash")
	}
}
