package store

import (
	"context"
	"errors"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

func newService(name, image string) *servingv1.Service {
	s := &servingv1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindService},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
	}
	s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers, corev1.Container{Image: image})
	return s
}

func TestStoreLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []Event
	s.Subscribe(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })

	svc := newService("hello", "a")
	if err := s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Generation != 1 || svc.UID == "" || svc.ResourceVersion == "" {
		t.Fatalf("create did not set system fields: %+v", svc.ObjectMeta)
	}
	if err := s.Create(ctx, newService("hello", "a")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}

	// A status write does not bump the generation; a spec change does.
	svc.Status.LatestReadyRevisionName = "hello-00001"
	if err := s.UpdateStatus(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Generation != 1 {
		t.Fatalf("status update bumped generation to %d", svc.Generation)
	}
	stale := svc.ResourceVersion
	next := newService("hello", "b")
	if err := s.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next.Generation != 2 || next.Status.LatestReadyRevisionName != "hello-00001" {
		t.Fatalf("spec update: generation %d, status %+v; want 2 and the status kept", next.Generation, next.Status)
	}
	old := newService("hello", "c")
	old.ResourceVersion = stale
	if err := s.Update(ctx, old); !errors.Is(err, ErrConflict) {
		t.Fatalf("update with stale resourceVersion: %v, want ErrConflict", err)
	}

	// An identical write changes nothing and tells nobody.
	mu.Lock()
	before := len(events)
	mu.Unlock()
	same := newService("hello", "b")
	if err := s.Update(ctx, same); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(events) != before || same.ResourceVersion != next.ResourceVersion {
		t.Errorf("no-op update produced an event or a new version")
	}
	mu.Unlock()

	// Owned objects are deleted with their owner.
	child := &servingv1.Configuration{
		TypeMeta: metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindConfiguration},
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default",
			OwnerReferences: []metav1.OwnerReference{{Kind: servingv1.KindService, Name: "hello", UID: next.UID}}},
	}
	if err := s.Create(ctx, child); err != nil {
		t.Fatal(err)
	}

	// Everything survives a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got servingv1.Service
	if err := s.Get(ctx, KeyOf(next), &got); err != nil || got.Spec.Template.Spec.Containers[0].Image != "b" {
		t.Fatalf("after reopen: %v %+v", err, got.Spec)
	}
	if err := s.Delete(ctx, KeyOf(next)); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, KeyOf(child), &servingv1.Configuration{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("owned configuration after owner delete: %v, want ErrNotFound", err)
	}
	list, err := ListAs[servingv1.Service](ctx, s, servingv1.KindService, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("list after delete: %d, %v", len(list), err)
	}
}

// TestCreateRefusesChildOfDeletedOwner is the deterministic form of the delete-while-
// reconciling race: a reconciler read its Service, the Service was deleted (with what it
// owned), then the reconciler creates a child naming the Service as owner.
func TestCreateRefusesChildOfDeletedOwner(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	svc := newService("hello", "a")
	if err := s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	child := func(uid string) *servingv1.Configuration {
		yes := true
		return &servingv1.Configuration{
			TypeMeta: metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindConfiguration},
			ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default", OwnerReferences: []metav1.OwnerReference{{
				APIVersion: servingv1.GroupVersion, Kind: servingv1.KindService, Name: "hello", UID: types.UID(uid), Controller: &yes,
			}}},
		}
	}
	// An owner with another uid (deleted and created again) is not the owner.
	if err := s.Create(ctx, child("not-"+string(svc.UID))); !errors.Is(err, ErrOwnerGone) {
		t.Fatalf("create with a stale owner uid: %v, want ErrOwnerGone", err)
	}
	if err := s.Delete(ctx, KeyOf(svc)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, child(string(svc.UID))); !errors.Is(err, ErrOwnerGone) {
		t.Fatalf("create after the owner's delete: %v, want ErrOwnerGone", err)
	}
	var cfg servingv1.Configuration
	if err := s.Get(ctx, Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "hello"}, &cfg); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the orphan was stored: %v", err)
	}
	// With its owner present, the child is created.
	svc = newService("hello", "a")
	if err := s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, child(string(svc.UID))); err != nil {
		t.Fatalf("create with its owner present: %v", err)
	}
}
