package store

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

func openStore(t *testing.T, dir string, history int) *Store {
	t.Helper()
	s, err := OpenWith(dir, Options{History: history})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rvOf(t *testing.T, o Object) uint64 {
	t.Helper()
	rv, err := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

type change struct {
	typ  EventType
	name string
	rv   uint64
}

func changes(t *testing.T, s *Store, kind string, after uint64) []change {
	t.Helper()
	evs, upTo, current, err := s.Changes(context.Background(), kind, "", after, 1000, 1000)
	if err != nil {
		t.Fatalf("changes after %d: %v", after, err)
	}
	if upTo != current {
		t.Fatalf("changes read up to %d, current %d", upTo, current)
	}
	var out []change
	for _, e := range evs {
		var o struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(e.Object, &o); err != nil {
			t.Fatal(err)
		}
		if o.Metadata.ResourceVersion != strconv.FormatUint(e.ResourceVersion, 10) {
			t.Errorf("%s %s: object at resourceVersion %s in a change numbered %d", e.Type, e.Key.Name, o.Metadata.ResourceVersion, e.ResourceVersion)
		}
		out = append(out, change{e.Type, e.Key.Name, e.ResourceVersion})
	}
	return out
}

// Every change has the next resourceVersion and is kept, across a restart, so that a watch
// resumes from any resourceVersion the history still holds, in order, as from etcd.
func TestHistoryResumesAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	a := newService("a", "x")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	start := rvOf(t, a)
	b := newService("b", "x")
	if err := s.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	a2 := newService("a", "y")
	if err := s.Update(ctx, a2); err != nil {
		t.Fatal(err)
	}
	// Another kind's changes are not a Service watch's.
	if err := s.Create(ctx, &servingv1.Route{TypeMeta: metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRoute},
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, KeyOf(b)); err != nil {
		t.Fatal(err)
	}
	want := []change{{Added, "b", start + 1}, {Modified, "a", start + 2}, {Deleted, "b", start + 4}}
	got := changes(t, s, servingv1.KindService, start)
	if len(got) != len(want) {
		t.Fatalf("changes after %d: %v, want %v", start, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d: %v, want %v", i, got[i], want[i])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 0)
	defer s.Close()
	if again := changes(t, s, servingv1.KindService, start); len(again) != 3 || again[2] != want[2] {
		t.Errorf("after a restart: %v, want %v", again, want)
	}
	c := newService("c", "x")
	if err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if rvOf(t, c) != start+5 {
		t.Errorf("first resourceVersion after a restart: %d, want %d (they never go back)", rvOf(t, c), start+5)
	}
}

// History is bounded: a watch from before what it keeps gets ErrExpired (the API answers 410
// Gone and the client lists again), one from within it does not.
func TestHistoryIsBoundedAndExpires(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), 3)
	defer s.Close()
	var rvs []uint64
	for i := range 6 {
		svc := newService("s"+strconv.Itoa(i), "x")
		if err := s.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		rvs = append(rvs, rvOf(t, svc))
	}
	// Kept: the last three changes (rvs[3..5]); a watch from rvs[2] misses none.
	if got := changes(t, s, servingv1.KindService, rvs[2]); len(got) != 3 {
		t.Errorf("from the oldest kept: %v", got)
	}
	_, _, _, err := s.Changes(ctx, servingv1.KindService, "", rvs[1], 10, 10)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("from before the history: %v, want ErrExpired", err)
	}
	if err.Error() != "too old resource version: 2 (3)" {
		t.Errorf("message %q, want kube-apiserver's wording", err)
	}
	// Dry runs take no resourceVersion and leave no change behind.
	dry := newService("dry", "x")
	if err := s.CreateWith(ctx, dry, WriteOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if rv, _ := s.ResourceVersion(); rv != rvs[5] {
		t.Errorf("resourceVersion after a dry run: %d, want %d", rv, rvs[5])
	}
	if err := s.Get(ctx, KeyOf(dry), newService("", "")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a dry-run create was stored: %v", err)
	}
}

// Changes reads in batches: a watch far behind catches up without one huge read.
func TestChangesBatches(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), 0)
	defer s.Close()
	for i := range 10 {
		if err := s.Create(ctx, newService("s"+strconv.Itoa(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	var seen int
	var after uint64
	for {
		evs, upTo, current, err := s.Changes(ctx, servingv1.KindService, "", after, 3, 100)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(evs)
		if len(evs) > 3 {
			t.Fatalf("batch of %d, want at most 3", len(evs))
		}
		after = upTo
		if upTo == current {
			break
		}
	}
	if seen != 10 {
		t.Errorf("saw %d changes in batches, want 10", seen)
	}
}

func configuration(name string, owner *servingv1.Service, block bool) *servingv1.Configuration {
	return &servingv1.Configuration{
		TypeMeta: metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindConfiguration},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: servingv1.GroupVersion, Kind: servingv1.KindService, Name: owner.Name, UID: owner.UID, BlockOwnerDeletion: &block,
		}}},
	}
}

func exists(t *testing.T, s *Store, o Object) bool {
	t.Helper()
	_, err := s.GetRaw(context.Background(), KeyOf(o))
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func deleting(t *testing.T, s *Store, o Object) metav1.ObjectMeta {
	t.Helper()
	raw, err := s.GetRaw(context.Background(), KeyOf(o))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m.Metadata
}

// Deletion as the API server and its garbage collector do it: an object with finalizers is
// only marked and goes when the last one is removed, taking what it owns (Background); in
// Foreground it waits for the dependents that block it; Orphan leaves them, without the
// reference. Cases follow Kubernetes' garbage collector docs
// (https://kubernetes.io/docs/concepts/architecture/garbage-collection/).
func TestDeletePropagationAndFinalizers(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), 0)
	defer s.Close()

	t.Run("finalizer holds the object, its removal lets it and its dependents go", func(t *testing.T) {
		svc := newService("fin", "x")
		svc.Finalizers = []string{"example.com/hold"}
		if err := s.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		cfg := configuration("fin", svc, false)
		if err := s.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		_, gone, err := s.DeleteWith(ctx, KeyOf(svc), DeleteOptions{})
		if err != nil || gone {
			t.Fatalf("delete with a finalizer: gone %v, %v", gone, err)
		}
		m := deleting(t, s, svc)
		if m.DeletionTimestamp == nil || m.Generation != 2 || !exists(t, s, cfg) {
			t.Fatalf("marked: %+v, dependent kept %v", m, exists(t, s, cfg))
		}
		// No new finalizer once deleting.
		more := newService("fin", "x")
		more.Finalizers = []string{"example.com/hold", "example.com/other"}
		var forbidden *ForbiddenError
		if err := s.Update(ctx, more); !errors.As(err, &forbidden) || forbidden.Field != "metadata.finalizers" {
			t.Fatalf("adding a finalizer while deleting: %v", err)
		}
		last := newService("fin", "x")
		if err := s.Update(ctx, last); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, svc) || exists(t, s, cfg) {
			t.Errorf("after its last finalizer: object %v, dependent %v; want both gone", exists(t, s, svc), exists(t, s, cfg))
		}
	})

	t.Run("foreground waits for blocking dependents", func(t *testing.T) {
		svc := newService("fg", "x")
		if err := s.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		held := configuration("fg", svc, true)
		held.Finalizers = []string{"example.com/hold"}
		if err := s.Create(ctx, held); err != nil {
			t.Fatal(err)
		}
		free := configuration("fg-free", svc, true)
		if err := s.Create(ctx, free); err != nil {
			t.Fatal(err)
		}
		raw, gone, err := s.DeleteWith(ctx, KeyOf(svc), DeleteOptions{Propagation: metav1.DeletePropagationForeground})
		if err != nil || gone {
			t.Fatalf("foreground delete: gone %v, %v", gone, err)
		}
		var o struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		_ = json.Unmarshal(raw, &o)
		if o.Metadata.DeletionTimestamp == nil || len(o.Metadata.Finalizers) != 1 || o.Metadata.Finalizers[0] != FinalizerForeground {
			t.Fatalf("owner: %+v, want marked with %s", o.Metadata, FinalizerForeground)
		}
		if exists(t, s, free) || deleting(t, s, held).DeletionTimestamp == nil {
			t.Fatalf("dependents: free %v, held marked %v", exists(t, s, free), deleting(t, s, held).DeletionTimestamp)
		}
		// The held dependent's finalizer goes: it goes, then its owner.
		h := configuration("fg", svc, true)
		if err := s.Update(ctx, h); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, held) || exists(t, s, svc) {
			t.Errorf("after the last blocking dependent: dependent %v, owner %v; want both gone", exists(t, s, held), exists(t, s, svc))
		}
	})

	t.Run("orphan keeps dependents without the reference", func(t *testing.T) {
		svc := newService("orphan", "x")
		if err := s.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		cfg := configuration("orphan", svc, true)
		if err := s.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if _, gone, err := s.DeleteWith(ctx, KeyOf(svc), DeleteOptions{Propagation: metav1.DeletePropagationOrphan}); err != nil || !gone {
			t.Fatalf("orphan delete: gone %v, %v", gone, err)
		}
		if m := deleting(t, s, cfg); len(m.OwnerReferences) != 0 {
			t.Errorf("orphan still refers to its owner: %+v", m.OwnerReferences)
		}
	})

	t.Run("preconditions", func(t *testing.T) {
		svc := newService("pre", "x")
		if err := s.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.DeleteWith(ctx, KeyOf(svc), DeleteOptions{UID: types.UID("other")})
		var conflict *ConflictError
		if !errors.As(err, &conflict) || !errors.Is(err, ErrConflict) {
			t.Fatalf("uid precondition: %v", err)
		}
		if _, _, err := s.DeleteWith(ctx, KeyOf(svc), DeleteOptions{ResourceVersion: "1"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("resourceVersion precondition: %v", err)
		}
		if _, gone, err := s.DeleteWith(ctx, KeyOf(svc), DeleteOptions{DryRun: true}); err != nil || !gone || !exists(t, s, svc) {
			t.Fatalf("dry-run delete: gone %v, %v, still there %v", gone, err, exists(t, s, svc))
		}
		if _, gone, err := s.DeleteWith(ctx, KeyOf(svc), DeleteOptions{UID: svc.UID, ResourceVersion: svc.ResourceVersion}); err != nil || !gone {
			t.Fatalf("matching preconditions: gone %v, %v", gone, err)
		}
	})

	t.Run("a namespace takes what is in it", func(t *testing.T) {
		ns := &namespaceObject{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "team"}}
		if err := s.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		svc := newService("in-team", "x")
		svc.Namespace = "team"
		if err := s.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		other := newService("elsewhere", "x")
		if err := s.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, KeyOf(ns)); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, svc) || !exists(t, s, other) {
			t.Errorf("after deleting namespace team: its service %v, another namespace's %v", exists(t, s, svc), exists(t, s, other))
		}
	})
}

type namespaceObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
}

// A status write through the API records its managedFields; one from a reconciler (without
// the option) cannot change them.
func TestUpdateStatusManagedFields(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), 0)
	defer s.Close()
	svc := newService("mf", "x")
	if err := s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	write := func(opts WriteOptions, manager string) []metav1.ManagedFieldsEntry {
		o := newService("mf", "x")
		o.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate}}
		o.Status.LatestReadyRevisionName = manager
		if err := s.UpdateStatusWith(ctx, o, opts); err != nil {
			t.Fatal(err)
		}
		return deleting(t, s, svc).ManagedFields
	}
	if mf := write(WriteOptions{}, "reconciler"); len(mf) != 0 {
		t.Errorf("a plain status write changed managedFields: %+v", mf)
	}
	if mf := write(WriteOptions{ManagedFields: true}, "api"); len(mf) != 1 || mf[0].Manager != "api" {
		t.Errorf("an API status write: managedFields %+v", mf)
	}
}
