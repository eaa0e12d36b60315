package reconciler

import (
	"context"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// With StatusCoalesce, an object still in progress (Ready Unknown, stored and computed)
// writes its intermediate statuses at most once per window, the first one included; a
// status reaching True or False, or one for a new generation, is written at once. So the
// final statuses are Knative's, with fewer API writes on the way.
func TestInProgressStatusesAreCoalesced(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	c := New(Config{Store: st, Logger: slog.New(slog.DiscardHandler), StatusCoalesce: time.Second})
	defer c.queue.ShutDown()
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	rev := &servingv1.Revision{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRevision},
		ObjectMeta: metav1.ObjectMeta{Name: "r-00001", Namespace: "default"},
	}
	if err := st.Create(ctx, rev); err != nil {
		t.Fatal(err)
	}
	key := store.KeyOf(rev)
	// write computes the next status on the stored Revision as a reconcile does, and
	// returns the Ready condition stored afterwards ("" for none) and its reason.
	write := func(gen int64, status duck.ConditionStatus, reason string) (duck.ConditionStatus, string) {
		t.Helper()
		var r servingv1.Revision
		if err := st.Get(ctx, key, &r); err != nil {
			t.Fatal(err)
		}
		was := storedStatus(&r.Status.Status)
		r.Status.ObservedGeneration = gen
		r.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: status, Reason: reason}, now)
		if err := c.updateStatus(ctx, &r, was, &r.Status.Status); err != nil {
			t.Fatal(err)
		}
		var stored servingv1.Revision
		if err := st.Get(ctx, key, &stored); err != nil {
			t.Fatal(err)
		}
		if cond := stored.Status.GetCondition(duck.ConditionReady); cond != nil {
			return cond.Status, cond.Reason
		}
		return "", ""
	}
	steps := []struct {
		after      time.Duration
		gen        int64
		status     duck.ConditionStatus
		reason     string
		wantStored duck.ConditionStatus
		wantReason string
	}{
		{0, 1, duck.Unknown, "Deploying", "", ""},                                           // the first status, in progress: put off
		{500 * time.Millisecond, 1, duck.Unknown, "Activating", "", ""},                     // still within the window
		{500 * time.Millisecond, 1, duck.Unknown, "Activating", duck.Unknown, "Activating"}, // a second in progress: written
		{100 * time.Millisecond, 1, duck.Unknown, "Waiting", duck.Unknown, "Activating"},    // a new window
		{100 * time.Millisecond, 1, duck.True, "", duck.True, ""},                           // Ready: at once
		{100 * time.Millisecond, 1, duck.Unknown, "Deploying", duck.Unknown, "Deploying"},   // True to Unknown: at once
		{100 * time.Millisecond, 2, duck.Unknown, "Deploying", duck.Unknown, "Deploying"},   // a new generation: at once
		{100 * time.Millisecond, 2, duck.False, "Failed", duck.False, "Failed"},             // False: at once
	}
	for i, s := range steps {
		now = now.Add(s.after)
		if got, reason := write(s.gen, s.status, s.reason); got != s.wantStored || reason != s.wantReason {
			t.Fatalf("step %d (%s %s): stored Ready %q %q, want %q %q", i, s.status, s.reason, got, reason, s.wantStored, s.wantReason)
		}
	}
	var r servingv1.Revision
	if err := st.Get(ctx, key, &r); err != nil {
		t.Fatal(err)
	}
	if r.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d, want 2", r.Status.ObservedGeneration)
	}
}

// A status put off is not lost: the object is reconciled again once the window has passed,
// and that reconcile writes it.
func TestPutOffStatusIsReconciledAfterTheWindow(t *testing.T) {
	c := New(Config{StatusCoalesce: 50 * time.Millisecond})
	defer c.queue.ShutDown()
	k := key(servingv1.KindRoute, "r")
	if !c.putOff(k, c.cfg.StatusCoalesce) {
		t.Fatal("the first in-progress status was not put off")
	}
	got := make(chan store.Key, 1)
	go func() {
		k, _ := c.queue.Get()
		got <- k
	}()
	select {
	case g := <-got:
		if g != k {
			t.Fatalf("reconciled %v, want %v", g, k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not enqueued again after the window")
	}
	// The queue waited out the window before handing the key back.
	if c.putOff(k, c.cfg.StatusCoalesce) {
		t.Error("put off again after the window, want written")
	}
}
