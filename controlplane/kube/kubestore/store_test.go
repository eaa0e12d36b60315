package kubestore

import (
	"context"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
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
	rev := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": servingv1.GroupVersion, "kind": servingv1.KindRevision,
		"metadata": map[string]any{"name": "hello-00001", "namespace": "default", "resourceVersion": "7"},
		"spec":     map[string]any{"containers": []any{map[string]any{"image": "example.com/hello"}}},
		"status": map[string]any{"observedGeneration": int64(0), "conditions": []any{
			map[string]any{"type": "Ready", "status": "Unknown", "reason": "Deploying", "lastTransitionTime": "2026-12-07T12:00:00Z"},
		}},
	}}
	s, client := startStore(t, rev)
	key := store.Key{Kind: servingv1.KindRevision, Namespace: "default", Name: "hello-00001"}
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

	// Written from an older read than the cache's (another resourceVersion), the status goes
	// to the API server even when it equals the cached one: the server decides.
	stale := r
	stale.ResourceVersion = "3"
	client.PrependReactor("update", "revisions", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return false, nil, nil
	})
	before := statusWrites(client)
	_ = s.UpdateStatus(ctx, &stale)
	if n := statusWrites(client) - before; n != 1 {
		t.Fatalf("%d status writes from a stale read, want 1", n)
	}
}
