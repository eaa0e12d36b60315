package reconciler

import (
	"testing"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

func key(kind, name string) store.Key {
	return store.Key{Kind: kind, Namespace: "default", Name: name}
}

// getNow takes the next key, failing the test when none is queued.
func getNow(t *testing.T, c *Controller) store.Key {
	t.Helper()
	if c.queue.Len() == 0 {
		t.Fatal("queue is empty")
	}
	k, quit := c.queue.Get()
	if quit {
		t.Fatal("queue shut down")
	}
	return k
}

// A restart's backlog (the slow lane) waits behind whatever a change enqueues, so the
// children a reconcile writes are reconciled next, not after every other Service (as
// Knative's two-lane queue, knative.dev/pkg/controller/two_lane_queue_test.go, orders them).
func TestQueueServesChangesBeforeResync(t *testing.T) {
	c := New(Config{})
	defer c.queue.ShutDown()
	for _, n := range []string{"a", "b", "c"} {
		c.lanes.markSlow(key(servingv1.KindService, n))
		c.queue.Add(key(servingv1.KindService, n))
	}
	a := getNow(t, c)
	if a != key(servingv1.KindService, "a") {
		t.Fatalf("first key = %v, want Service a (resync order)", a)
	}
	// Reconciling a wrote its Configuration and Route: their events come first.
	c.queue.Add(key(servingv1.KindConfiguration, "a"))
	c.queue.Add(key(servingv1.KindRoute, "a"))
	c.queue.Add(a) // re-added while processing: queued again once Done
	c.queue.Done(a)
	// A change to c, still waiting in the slow lane, moves it to the fast one (after the others).
	c.queue.Add(key(servingv1.KindService, "c"))

	want := []store.Key{
		key(servingv1.KindConfiguration, "a"), key(servingv1.KindRoute, "a"), key(servingv1.KindService, "a"),
		key(servingv1.KindService, "c"), key(servingv1.KindService, "b"),
	}
	for i, w := range want {
		if got := getNow(t, c); got != w {
			t.Fatalf("key %d = %v, want %v", i, got, w)
		}
		c.queue.Done(w)
	}
	if n := c.queue.Len(); n != 0 {
		t.Fatalf("%d keys left, want none (each key once)", n)
	}
}

// Keys added several times are reconciled once per Get, and none is lost, whatever the lane.
func TestQueueLanesKeepEveryKeyOnce(t *testing.T) {
	c := New(Config{})
	defer c.queue.ShutDown()
	for i := range 100 {
		k := key(servingv1.KindRevision, string(rune('a'+i%26))+string(rune('a'+i/26)))
		if i%2 == 0 {
			c.lanes.markSlow(k)
		}
		c.queue.Add(k)
		c.queue.Add(k) // deduplicated (and, from the slow lane, promoted)
	}
	c.queue.AddAfter(key(servingv1.KindRoute, "late"), time.Millisecond)
	seen := map[store.Key]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 101 && time.Now().Before(deadline) {
		if c.queue.Len() == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		k, _ := c.queue.Get()
		if seen[k] {
			t.Fatalf("%v handed out twice", k)
		}
		seen[k] = true
		c.queue.Done(k)
	}
	if len(seen) != 101 {
		t.Fatalf("got %d keys, want 101", len(seen))
	}
	if n := c.queue.Len(); n != 0 {
		t.Fatalf("%d keys left, want none", n)
	}
}
