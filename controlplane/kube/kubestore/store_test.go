package kubestore

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/internal/testwait"
)

func startStore(t *testing.T, objs ...runtime.Object) (*Store, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	listKinds := map[schema.GroupVersionResource]string{}
	for kind, gvr := range kinds {
		listKinds[gvr] = kind + "List"
	}
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
	s := New(client, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); s.Shutdown() })
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return s, client
}

// startWithRevision starts a Store over a client holding one Revision, default/hello-00001
// at resourceVersion 7, with meta added to its metadata and status as its status (if any).
func startWithRevision(t *testing.T, meta, status map[string]any) (*Store, *dynamicfake.FakeDynamicClient, store.Key) {
	t.Helper()
	md := map[string]any{"name": "hello-00001", "namespace": "default", "resourceVersion": "7"}
	maps.Copy(md, meta)
	rev := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": servingv1.GroupVersion, "kind": servingv1.KindRevision, "metadata": md,
		"spec": map[string]any{"containers": []any{map[string]any{"image": "example.com/hello"}}},
	}}
	if status != nil {
		rev.Object["status"] = status
	}
	s, client := startStore(t, rev)
	return s, client, store.Key{Kind: servingv1.KindRevision, Namespace: "default", Name: "hello-00001"}
}

func statusWrites(c *dynamicfake.FakeDynamicClient) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

// A status equal to the stored one is not written (Knative's generated reconcilers compare
// before they update status); a changed one is, and the last one written is what is stored.
func TestUpdateStatusSkipsUnchangedStatus(t *testing.T) {
	s, client, key := startWithRevision(t, nil, map[string]any{"observedGeneration": int64(0), "conditions": []any{
		map[string]any{"type": "Ready", "status": "Unknown", "reason": "Deploying", "lastTransitionTime": "2026-12-07T12:00:00Z"},
	}})
	ctx := context.Background()

	var r servingv1.Revision
	if err := s.Get(ctx, key, &r); err != nil {
		t.Fatal(err)
	}
	// Marking the same condition again keeps its transition time: nothing changes.
	r.Status.MarkUnknown(duck.ConditionReady, "Deploying", "", time.Now())
	if err := s.UpdateStatus(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if n := statusWrites(client); n != 0 {
		t.Fatalf("%d status writes for an unchanged status, want 0", n)
	}
	if r.ResourceVersion != "7" || r.Status.GetCondition(duck.ConditionReady).Reason != "Deploying" {
		t.Fatalf("after a skipped write the object is %+v, want the stored one", r.ObjectMeta)
	}

	r.Status.MarkTrue(duck.ConditionReady, time.Now())
	if err := s.UpdateStatus(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if n := statusWrites(client); n != 1 {
		t.Fatalf("%d status writes for a changed status, want 1", n)
	}
	got, err := client.Resource(kinds[servingv1.KindRevision]).Namespace("default").Get(ctx, "hello-00001", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
	if len(conds) != 1 || conds[0].(map[string]any)["status"] != "True" {
		t.Fatalf("stored conditions %v, want Ready=True", conds)
	}

	// Written from an older read than the cache's (another resourceVersion), a status equal
	// to the cached one is not sent either: it would only come back as a conflict.
	testwait.For(t, 5*time.Second, "the cache to hold Ready=True", func() bool {
		var got servingv1.Revision
		return s.Get(ctx, key, &got) == nil && got.Status.GetCondition(duck.ConditionReady).Status == "True"
	})
	stale := r
	stale.ResourceVersion = "3"
	before := statusWrites(client)
	if err := s.UpdateStatus(ctx, &stale); err != nil {
		t.Fatal(err)
	}
	if n := statusWrites(client) - before; n != 0 {
		t.Fatalf("%d status writes from a stale read of the cached status, want 0", n)
	}
	// A different status from a stale read goes to the API server, which decides.
	stale.Status.MarkFalse(duck.ConditionReady, "Failed", "", time.Now())
	client.PrependReactor("update", "revisions", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return false, nil, nil
	})
	_ = s.UpdateStatus(ctx, &stale)
	if n := statusWrites(client) - before; n != 1 {
		t.Fatalf("%d status writes of a changed status from a stale read, want 1", n)
	}
}

// A write leaves metadata.managedFields out: the API server keeps the stored entries for an
// update without them, and decoding them back was part of every write's cost. Reads see each
// change the informer stores, also when the resourceVersion stays (as in the fake client).
func TestUpdateSendsNoManagedFieldsAndReadsSeeChanges(t *testing.T) {
	s, client, key := startWithRevision(t, map[string]any{
		"managedFields": []any{map[string]any{"manager": "kubectl", "operation": "Update", "apiVersion": "serving.knative.dev/v1"}},
	}, nil)
	ctx := context.Background()
	var r servingv1.Revision
	if err := s.Get(ctx, key, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.ManagedFields) != 1 {
		t.Fatalf("read managedFields %v, want the stored entry", r.ManagedFields)
	}
	r.Status.MarkTrue(duck.ConditionReady, time.Now())
	if err := s.UpdateStatus(ctx, &r); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if u, ok := a.(k8stesting.UpdateAction); ok {
			if _, found, _ := unstructured.NestedSlice(u.GetObject().(*unstructured.Unstructured).Object, "metadata", "managedFields"); found {
				t.Fatalf("%s %s sent managedFields", a.GetVerb(), a.GetSubresource())
			}
		}
	}
	testwait.For(t, 5*time.Second, "the cache to hold Ready=True", func() bool {
		var got servingv1.Revision
		return s.Get(ctx, key, &got) == nil && got.Status.GetCondition(duck.ConditionReady) != nil &&
			got.Status.GetCondition(duck.ConditionReady).Status == "True"
	})
}

// Two reconciles that read the same version and compute the same status write it once,
// whether or not the informer has delivered the first write when the second comes: the
// second would only come back as a conflict.
func TestSameStatusFromTheSameReadIsWrittenOnce(t *testing.T) {
	s, client, key := startWithRevision(t, nil, nil)
	ctx := context.Background()
	var first, second servingv1.Revision
	if err := s.Get(ctx, key, &first); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, key, &second); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first.Status.MarkTrue(duck.ConditionReady, now)
	second.Status.MarkTrue(duck.ConditionReady, now)
	if err := s.UpdateStatus(ctx, &first); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateStatus(ctx, &second); err != nil {
		t.Fatal(err)
	}
	if n := statusWrites(client); n != 1 {
		t.Fatalf("%d status writes, want 1", n)
	}
	if c := second.Status.GetCondition(duck.ConditionReady); c == nil || c.Status != "True" {
		t.Fatalf("the second caller's object has %+v, want the written Ready=True", second.Status.Conditions)
	}
}

func configMapObject(ns, name, value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": ns}, "data": map[string]any{"delivery-retryafter": value}}}
}

// ConfigMapNamed serves that one ConfigMap of another namespace besides ConfigMapsIn's; a
// Forbidden list of it (RBAC without knative-eventing) does not keep Start from returning,
// and the ConfigMap then reads as absent.
func TestConfigMapNamed(t *testing.T) {
	listKinds := map[schema.GroupVersionResource]string{}
	for kind, gvr := range kinds {
		listKinds[gvr] = kind + "List"
	}
	for _, forbidden := range []bool{false, true} {
		client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds,
			configMapObject("skiff-system", "config-features", "serving"),
			configMapObject("knative-eventing", "config-features", "enabled"),
			configMapObject("knative-eventing", "config-other", "enabled"))
		if forbidden {
			client.PrependReactor("list", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetNamespace() != "knative-eventing" {
					return false, nil, nil
				}
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", nil)
			})
		}
		s := New(client, slog.New(slog.DiscardHandler), nil, ConfigMapsIn("skiff-system"), ConfigMapNamed("knative-eventing", "config-features"))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Start(ctx); err != nil {
			t.Fatalf("forbidden=%v: %v", forbidden, err)
		}
		read := func(ns, name string) (string, error) {
			var cm api.ConfigMap
			err := s.Get(ctx, store.Key{Kind: api.KindConfigMap, Namespace: ns, Name: name}, &cm)
			return cm.Data["delivery-retryafter"], err
		}
		if v, err := read("skiff-system", "config-features"); err != nil || v != "serving" {
			t.Errorf("forbidden=%v: skiff-system/config-features = %q, %v", forbidden, v, err)
		}
		v, err := read("knative-eventing", "config-features")
		switch {
		case forbidden && !errors.Is(err, store.ErrNotFound):
			t.Errorf("forbidden: knative-eventing/config-features = %q, %v; want not found", v, err)
		case !forbidden && (err != nil || v != "enabled"):
			t.Errorf("knative-eventing/config-features = %q, %v; want enabled", v, err)
		}
		if _, err := read("knative-eventing", "config-other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("forbidden=%v: knative-eventing/config-other read (%v); only config-features is served there", forbidden, err)
		}
		cancel()
		s.Shutdown()
	}
}

// TestSetSettingsDefaultsLaterReads: objects read are defaulted with the settings in force,
// so a config-defaults edit the leader followed (revision-timeout-seconds) reaches the
// Revisions the reconcilers read next, as it reaches the webhooks' writes.
func TestSetSettingsDefaultsLaterReads(t *testing.T) {
	s, _, key := startWithRevision(t, nil, nil)
	timeout := func() int64 {
		var rev servingv1.Revision
		if err := s.Get(context.Background(), key, &rev); err != nil {
			t.Fatal(err)
		}
		if rev.Spec.TimeoutSeconds == nil {
			return 0
		}
		return *rev.Spec.TimeoutSeconds
	}
	if got := timeout(); got != 300 {
		t.Fatalf("timeoutSeconds read with Knative's defaults = %d, want 300", got)
	}
	cfg := config.Default()
	if err := cfg.Apply(config.DefaultsConfigName, map[string]string{"revision-timeout-seconds": "120"}); err != nil {
		t.Fatal(err)
	}
	s.SetSettings(cfg)
	if got := timeout(); got != 120 {
		t.Errorf("timeoutSeconds read after revision-timeout-seconds: 120 = %d, want 120", got)
	}
}
