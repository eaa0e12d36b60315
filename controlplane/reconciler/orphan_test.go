package reconciler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// TestDeleteWhileReconcilingLeavesNoOrphan creates 200 Services and deletes each as soon as
// its reconcile has started writing children (its Configuration exists), concurrently, and
// checks that no Configuration, Route or Revision outlives its Service: a reconcile that read
// its parent before the cascade delete must not write a child after it.
func TestDeleteWhileReconcilingLeavesNoOrphan(t *testing.T) {
	st, ctrl := startController(t, 8)
	ctx := context.Background()

	const n = 200
	// started[i] closes when Service i's Configuration is created: its reconcile is running.
	started := make([]chan struct{}, n)
	for i := range started {
		started[i] = make(chan struct{})
	}
	var once sync.Map
	unsubscribe := st.Subscribe(func(e store.Event) {
		var i int
		if e.Type != store.Added || e.Key.Kind != servingv1.KindConfiguration {
			return
		}
		if _, err := fmt.Sscanf(e.Key.Name, "s%d", &i); err == nil && i < n {
			if _, dup := once.LoadOrStore(i, true); !dup {
				close(started[i])
			}
		}
	})
	defer unsubscribe()
	var early atomic.Int32 // deleted before their reconcile wrote a child
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			svc := &servingv1.Service{
				TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindService},
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i), Namespace: "default"},
				Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
					Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "ko://example.com/app"}}}},
				}}},
			}
			if errs := api.Errors(api.Admit(ctx, svc, nil)); errs != nil {
				t.Error(errs)
				return
			}
			if err := st.Create(ctx, svc); err != nil {
				t.Error(err)
				return
			}
			// Delete as soon as the reconciler is writing children (on a loaded machine it
			// may not have started yet: deleting then is a valid case too).
			select {
			case <-started[i]:
			case <-time.After(time.Minute):
				early.Add(1)
			}
			if err := st.Delete(ctx, store.KeyOf(svc)); err != nil {
				t.Error(err)
			}
		})
	}
	start := time.Now()
	wg.Wait()
	t.Logf("created and deleted in %v (%d deleted before their reconcile wrote a child)", time.Since(start), early.Load())

	// Wait for the reconcilers to settle: the queue drained and nothing left for a while.
	deadline := time.Now().Add(time.Minute)
	quiet := 0
	for quiet < 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if ctrl.queue.Len() == 0 && len(leftovers(t, st)) == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	if left := leftovers(t, st); len(left) > 0 {
		t.Fatalf("%d objects outlived their deleted Service: %v", len(left), left)
	}
}

func leftovers(t *testing.T, st *store.Store) []string {
	t.Helper()
	var out []string
	for _, kind := range []string{servingv1.KindService, servingv1.KindConfiguration, servingv1.KindRoute, servingv1.KindRevision} {
		objs, err := store.ListAs[metaOnly](context.Background(), st, kind, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			out = append(out, kind+"/"+o.Metadata.Name)
		}
	}
	return out
}
